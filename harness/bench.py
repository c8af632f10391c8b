"""The bench at run time: each DUT's process, transport endpoint, Device, power and time control.

Built from a rig through the plugin registry (no if/elif over protocols or injectors). It owns
every process it starts and stops each one by PID at the end, also when the run fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import registry
from harness.config.loading import LoadedRig
from harness.config.profile import Profile
from harness.config.rig import Dut, Timing
from harness.devices.api import Device, Identity
from harness.devices.transcript import Transcript
from harness.fault_injection.launcher import DutProcess
from harness.fault_injection.ports import free_port
from harness.fault_injection.record import FaultLog
from harness.fault_injection.serial_line import PtyPair
from harness.quantities import IDENTITY_QUANTITIES


class BenchError(RuntimeError):
    """The bench could not bring a DUT up (with what to do about it)."""


@dataclass
class DutRuntime:
    name: str
    spec: Dut
    profile: Profile
    profile_path: Path
    timing: Timing
    out_dir: Path
    transcript: Transcript | None
    faults: FaultLog
    defects: list[str]
    seed: int = 1
    endpoint: dict[str, Any] = field(default_factory=dict)
    process: DutProcess | None = None
    pty: PtyPair | None = None
    control_host: str = "127.0.0.1"
    control_port: int | None = None
    _device: Device | None = None
    power: Any = None
    time: Any = None
    tamper: Any = None  # tamper inputs (cover, magnetic field), when the rig can drive them
    identity: Identity | None = None
    upstream: Any = None  # harness.upstream.UpstreamRuntime: brokers, link proxies, head-end (pushing DUTs)
    started: bool = False
    failure: Exception | None = None

    # ---- bring-up -----------------------------------------------------------------------------
    def start(self) -> None:
        """Bring the DUT up once; a failure is remembered so later checks report it without retrying."""
        if self.failure is not None:
            raise self.failure
        if self.started:
            return
        self.started = True
        try:
            self._bring_up()
        except Exception as exc:
            self.failure = exc
            self.stop()
            raise

    def _bring_up(self) -> None:
        self._resolve_endpoint()
        if self.spec.upstream is not None:
            self._start_upstream()
        if self.spec.launch is not None:
            self.process = DutProcess(self.name, self.spec.launch, self._placeholders(),
                                      self.out_dir / "logs" / f"{self.name}.log")
            self.process.start()
            self.process.wait_ready(self.probe)
        else:
            self.probe()
        self.power = self._injector("power", self.spec.power.kind) if self.spec.power else None
        self.time = self._injector("time", "simulator" if self.control_port else "wall")
        self.tamper = self._injector("tamper", "simulator") if self.control_port else None
        self.identity = self.device.identity() if any(self.profile.declares(q) for q in IDENTITY_QUANTITIES) \
            else Identity(None, None)

    def _resolve_endpoint(self) -> None:
        t = self.spec.transport
        if t.tcp is not None:
            port = free_port(t.tcp.host) if t.tcp.port == "auto" else t.tcp.port
            self.endpoint = {"host": t.tcp.host, "port": port}
        elif t.serial is not None:
            if t.serial.port == "pty":
                self.pty = PtyPair(self.out_dir / "state" / self.name, "rtu")
                self.pty.open()
                self.endpoint = {"serial_port": str(self.pty.harness_end), "dut_serial_port": str(self.pty.dut_end)}
            else:
                self.endpoint = {"serial_port": t.serial.port, "dut_serial_port": t.serial.port}
        if self.spec.control is not None:
            c = self.spec.control
            self.control_host = c.host if c.host != "localhost" else "127.0.0.1"
            self.control_port = free_port(self.control_host) if c.port == "auto" else c.port

    def _start_upstream(self) -> None:
        from harness.upstream import UpstreamRuntime

        uplink = getattr(self.profile, "uplink", None)
        if uplink is None:
            raise BenchError(f"{self.name}: the rig gives upstream channels but the profile declares no `uplink` "
                             "(protocol, topics, declared switchover time)")
        self.upstream = UpstreamRuntime(self.name, self.spec.upstream, uplink.topic_prefix, self.out_dir, self.faults,
                                        seed=self.seed)
        self.upstream.start()

    def _placeholders(self) -> dict[str, str]:
        state_dir = self.out_dir / "state" / self.name
        state_dir.mkdir(parents=True, exist_ok=True)
        serial = self.spec.transport.serial
        return {
            "profile": str(self.profile_path),
            "state_dir": str(state_dir),
            "host": str(self.endpoint.get("host", "")),
            "port": str(self.endpoint.get("port", "")),
            "serial_port": str(self.endpoint.get("dut_serial_port", "")),
            "baudrate": str(serial.baudrate if serial else ""),
            "control_port": str(self.control_port or ""),
            "defects": ",".join(self.defects),
            **(self.upstream.placeholders() if self.upstream is not None else {}),
        }

    def _injector(self, kind: str, name: str) -> Any:
        specs = registry.fault_injectors(kind)
        if name not in specs:
            raise BenchError(f"{self.name}: no {kind} injector named {name!r}; installed: {', '.join(specs)}")
        return specs[name].factory(self)

    # ---- the Device ---------------------------------------------------------------------------
    @property
    def device(self) -> Device:
        if self._device is None:
            drivers = registry.drivers()
            spec = drivers.get(self.profile.protocol)
            if spec is None:
                raise BenchError(f"{self.name}: no driver for protocol {self.profile.protocol!r}; installed: "
                                 f"{', '.join(drivers)}")
            self._device = spec.factory(self.name, self.profile, self.spec, self.timing, self.transcript,
                                        self.endpoint)
        return self._device

    def probe(self) -> None:
        """Does the DUT answer? (Raises until it does.)"""
        self.device.probe()

    def stop(self) -> None:
        try:
            if self._device is not None:
                self._device.close()
        finally:
            try:
                if self.process is not None:
                    self.process.stop()
            finally:
                try:
                    if self.pty is not None:
                        self.pty.close()
                finally:
                    if self.upstream is not None:
                        self.upstream.stop()


class Bench:
    """All DUTs of a rig, started on first use and stopped together."""

    def __init__(self, loaded: LoadedRig, out_dir: Path, extra_defects: list[str] | None = None,
                 transcript: bool = True) -> None:
        self.loaded = loaded
        self.out_dir = out_dir
        self.transcript = Transcript(out_dir / "transcript.jsonl") if transcript else None
        self.faults = FaultLog(out_dir / "faults.jsonl")
        self.runtimes: dict[str, DutRuntime] = {}
        for name, spec in loaded.rig.duts.items():
            defects = [*spec.defects, *(extra_defects or [])] if spec.launch else []
            self.runtimes[name] = DutRuntime(name, spec, loaded.profiles[name], loaded.profile_paths[name],
                                             loaded.rig.timing, out_dir, self.transcript, self.faults, defects,
                                             seed=loaded.rig.seed)

    def dut(self, name: str) -> DutRuntime:
        runtime = self.runtimes[name]
        runtime.start()
        return runtime

    def close(self) -> None:
        for runtime in self.runtimes.values():
            runtime.stop()
        if self.transcript:
            self.transcript.close()
