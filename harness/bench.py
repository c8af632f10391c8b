"""The bench at run time: each DUT's process, transport endpoint, Device, power and time control.

Built from a rig through the plugin registry (no if/elif over protocols or injectors). It owns
every process it starts and stops each one by PID at the end, also when the run fails.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import registry
from harness.config.loading import LoadedRig
from harness.config.profile import Profile
from harness.config.rig import Dut, Timing, Transport
from harness.devices.api import Device, Identity
from harness.devices.transcript import Transcript
from harness.fault_injection.launcher import DutProcess
from harness.fault_injection.ports import free_port
from harness.fault_injection.record import FaultLog
from harness.fault_injection.serial_line import PtyPair
from harness.quantities import IDENTITY_QUANTITIES
from harness.redaction import Redactor, rig_secrets


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
    private_dir: Path | None = None  # outside the run folder: the PKI's private keys, the credentials file
    redactor: Redactor = field(default_factory=Redactor)
    endpoint: dict[str, Any] = field(default_factory=dict)
    process: DutProcess | None = None
    pty: PtyPair | None = None
    reserve_endpoint: dict[str, Any] = field(default_factory=dict)  # the second interface (`reserve_transport`)
    reserve_pty: PtyPair | None = None
    main_link: Any = None  # LinkProxy, SerialLinkRelay or NetnsLink on the main transport (rig `link: proxy | netns`)
    _reserve_device: Device | None = None
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
    # One costly observation several checks judge (e.g. the failover suite's main-interface outage),
    # kept here by the suite that made it; see harness.conformance.peer_channels.
    observations: dict[str, Any] = field(default_factory=dict)
    # An AMR server's field (rig `field:`): meter name -> (profile, path), and at run time the bench_field.Field.
    field_profiles: dict[str, Any] = field(default_factory=dict)
    field: Any = None
    field_file: Path | None = None  # the provisioning file the server is given ({field_file})

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
        if self.spec.link == "netns":
            self.main_link = self._injector("link", "netns")
            if self.main_link is None:
                from harness.fault_injection.netns import netns_available

                raise BenchError(f"{self.name}: link netns cannot be used here: {netns_available()}")
            self.main_link.create()
            self.endpoint["host"] = self.control_host = self.main_link.ns_address
        if self.spec.upstream is not None:
            self._start_upstream()
        if self.spec.link == "proxy":
            self.main_link = self._start_link_proxy()
        if self.spec.field:
            from harness.bench_field import Field

            self.field = Field(self, self.field_profiles)
            self.field_file = self.field.start()
        if self.spec.launch is not None:
            launch = self.spec.launch
            if self.spec.link == "netns":
                launch = launch.model_copy(update={"command": self.main_link.command(launch.command)})
            self.process = DutProcess(self.name, launch, self._placeholders(),
                                      self.out_dir / "logs" / f"{self.name}.log", self.redactor, self._credentials())
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
        self.endpoint, self.pty = self._endpoint_of(self.spec.transport, "rtu")
        if self.spec.reserve_transport is not None:
            self.reserve_endpoint, self.reserve_pty = self._endpoint_of(self.spec.reserve_transport, "reserve-rtu")
        if self.spec.control is not None:
            c = self.spec.control
            self.control_host = c.host if c.host != "localhost" else "127.0.0.1"
            self.control_port = free_port(self.control_host) if c.port == "auto" else c.port

    def _endpoint_of(self, t: Transport, pty_name: str) -> tuple[dict[str, Any], PtyPair | None]:
        """Where a transport is reached (a free port for ``auto``; a socat pair for ``pty``)."""
        if t.tcp is not None:
            port = free_port(t.tcp.host) if t.tcp.port == "auto" else t.tcp.port
            return {"host": t.tcp.host, "port": port}, None
        assert t.serial is not None
        if t.serial.port != "pty":
            return {"serial_port": t.serial.port, "dut_serial_port": t.serial.port}, None
        pty = PtyPair(self.out_dir / "state" / self.name, pty_name)
        pty.open()
        return {"serial_port": str(pty.harness_end), "dut_serial_port": str(pty.dut_end)}, pty

    def _start_link_proxy(self) -> Any:
        """The main transport's link-fault proxy, started. TCP (injector kind ``link``): the Device connects to
        its address, the wire campaigns still reach the DUT directly. A serial line (kind ``serial_link``) has
        one harness end, which the relay now holds: every client of the line opens the relay's ``client_end``."""
        serial = self.spec.transport.serial is not None
        link = self._injector("serial_link" if serial else "link", "proxy")
        if link is None:
            raise BenchError(f"{self.name}: link proxy cannot serve this transport (a serial line needs `port: pty`)")
        link.start()
        if serial:
            self.endpoint["serial_port"] = str(link.client_end)
        return link

    def _start_upstream(self) -> None:
        from harness.upstream import UpstreamRuntime

        uplink = getattr(self.profile, "uplink", None)
        if uplink is None:
            raise BenchError(f"{self.name}: the rig gives upstream channels but the profile declares no `uplink` "
                             "(protocol, topics, declared switchover time)")
        self.upstream = UpstreamRuntime(self.name, self.spec.upstream, uplink.topic_prefix, self.out_dir, self.faults,
                                        seed=self.seed)
        self.upstream.start()

    @property
    def state_dir(self) -> Path:
        """The launched DUT's state directory (placeholder ``{state_dir}``; the rig's firmware paths use it)."""
        return self.out_dir / "state" / self.name

    def _placeholders(self) -> dict[str, str]:
        state_dir = self.state_dir
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
            "control": f"{self.control_host}:{self.control_port}" if self.control_port else "",
            "reserve_serial_port": str(self.reserve_endpoint.get("dut_serial_port", "")),
            "reserve_host": str(self.reserve_endpoint.get("host", "")),
            "reserve_port": str(self.reserve_endpoint.get("port", "")),
            "defects": ",".join(self.defects),
            "field_file": str(self.field_file or ""),
            "credentials_file": self._credentials_file(),
            **(self.upstream.placeholders() if self.upstream is not None else {}),
            **self._pki_placeholders(),
        }

    def _credentials(self) -> dict[str, dict[str, str]]:
        """The rig's credentials for this DUT: role -> {user, password} (certificate accounts: their paths)."""
        return {role: {k: v for k, v in cred.model_dump().items() if v is not None}
                for role, cred in self.spec.credentials.items()}

    def _credentials_file(self) -> str:
        """{credentials_file}: the DUT's credentials as JSON in a 0600 file outside the run folder ('' without any)."""
        if not self.spec.credentials:
            return ""
        from harness.durable import write_atomically

        path = self._private() / f"{self.name}-credentials.json"
        write_atomically(path, json.dumps(self._credentials(), indent=1).encode(), mode=0o600)
        return str(path)

    def _private(self) -> Path:
        if self.private_dir is None:
            raise BenchError(f"{self.name}: no private directory for secrets (the bench makes one)")
        return self.private_dir

    def _pki_placeholders(self) -> dict[str, str]:
        """{client_cert}: the harness's trusted OPC UA client certificate (DER) for a simulator to trust, and
        {pki_dir}: the folder of all its client certificates (e.g. untrusted-client.der, for a lab that trusts
        anything), made before launch when the command names them (the driver finds the same files)."""
        launch = self.spec.launch
        if launch is None or not any("{client_cert}" in arg or "{pki_dir}" in arg for arg in launch.command):
            return {"client_cert": "", "pki_dir": ""}
        return {"client_cert": str(self.pki.client_cert), "pki_dir": str(self.pki.directory)}

    @property
    def pki(self) -> Any:
        """The harness's OPC UA client certificates (``harness.devices.opcua_pki.Pki``: trusted, untrusted; the
        rig's ``client_certificate`` replaces the trusted one), made on first use in the bench's private
        directory — their keys never enter the run folder; the certificates are copied to OUTDIR/pki at the end."""
        from harness.devices.opcua_pki import ensure_pki

        return ensure_pki(self.pki_dir, self.spec.client_certificate, self.spec.client_key)

    @property
    def pki_dir(self) -> Path:
        return self._private() / "pki"

    def _injector(self, kind: str, name: str) -> Any:
        specs = registry.fault_injectors(kind)
        if name not in specs:
            raise BenchError(f"{self.name}: no {kind} injector named {name!r}; installed: {', '.join(specs)}")
        return specs[name].factory(self)

    # ---- the Device ---------------------------------------------------------------------------
    @property
    def device(self) -> Device:
        """The DUT on its main transport (through the link proxy when the rig puts one there)."""
        if self._device is None:
            self._device = self._driver(self.name, self.spec, self._main_endpoint(), self.timing, self.transcript)
        return self._device

    def extra_device(self, label: str, timing: Timing, transcript: Transcript | None = None) -> Device:
        """Another Device on the main transport with its own timing (e.g. the availability soak's: no retries,
        no transcript). The caller closes it; on a serial line it must not use it while ``device`` does."""
        return self._driver(f"{self.name}/{label}", self.spec, self._main_endpoint(), timing, transcript)

    def main_address(self) -> tuple[str, int]:
        """Where a client reaches the main TCP transport (the link proxy's address when the rig puts one there)."""
        endpoint = self._main_endpoint()
        return str(endpoint["host"]), int(endpoint["port"])

    def _main_endpoint(self) -> dict[str, Any]:
        if self.spec.link == "proxy" and self.main_link is not None and self.spec.transport.tcp is not None:
            host, port = self.main_link.address
            return {**self.endpoint, "host": host, "port": port}
        return self.endpoint

    @property
    def reserve_device(self) -> Device | None:
        """The same DUT on its second interface (rig ``reserve_transport``), or None without one."""
        if self._reserve_device is None and self.spec.reserve_transport is not None:
            spec = self.spec.model_copy(update={"transport": self.spec.reserve_transport})
            self._reserve_device = self._driver(f"{self.name}/reserve", spec, self.reserve_endpoint, self.timing,
                                                self.transcript)
        return self._reserve_device

    def _driver(self, name: str, spec: Dut, endpoint: dict[str, Any], timing: Timing,
                transcript: Transcript | None) -> Device:
        drivers = registry.drivers()
        driver = drivers.get(self.profile.protocol)
        if driver is None:
            raise BenchError(f"{self.name}: no driver for protocol {self.profile.protocol!r}; installed: "
                             f"{', '.join(drivers)}")
        return driver.factory(name, self.profile, spec, timing, transcript,
                              {**endpoint, "pki_dir": str(self.pki_dir)})

    def probe(self) -> None:
        """Does the DUT answer? (Raises until it does.)"""
        self.device.probe()

    def stop(self) -> None:
        """Close and stop everything this DUT's bring-up made, in reverse order; one failing step
        never keeps the others from running (the first error is raised at the end)."""
        steps = [self._device, self._reserve_device, self.process,
                 self.main_link if self.spec.link == "proxy" else None,
                 self.pty, self.reserve_pty, self.upstream,
                 self.main_link if self.spec.link == "netns" else None,  # a namespace goes after its processes
                 self.field]  # an AMR server's field meters, after the server that polls them
        error: BaseException | None = None
        for step in steps:
            if step is None:
                continue
            try:
                step.stop() if hasattr(step, "stop") else step.close()
            except BaseException as exc:  # keep stopping the rest; re-raised below
                error = error or exc
        if error is not None:
            raise error


class Bench:
    """All DUTs of a rig, started on first use and stopped together."""

    def __init__(self, loaded: LoadedRig, out_dir: Path, extra_defects: list[str] | None = None,
                 transcript: bool = True) -> None:
        self.loaded = loaded
        self.out_dir = out_dir
        self.redactor = Redactor(rig_secrets(loaded.rig))
        # Secrets and private keys live here, never in the run folder; removed when the bench closes.
        self.private_dir = Path(tempfile.mkdtemp(prefix="tek-harness-private-"))
        self.transcript = Transcript(out_dir / "transcript.jsonl", self.redactor) if transcript else None
        self.faults = FaultLog(out_dir / "faults.jsonl")
        self.runtimes: dict[str, DutRuntime] = {}
        for name, spec in loaded.rig.duts.items():
            defects = [*spec.defects, *(extra_defects or [])] if spec.launch else []
            self.runtimes[name] = DutRuntime(name, spec, loaded.profiles[name], loaded.profile_paths[name],
                                             loaded.rig.timing, out_dir, self.transcript, self.faults, defects,
                                             seed=loaded.rig.seed, private_dir=self.private_dir,
                                             redactor=self.redactor, field_profiles=loaded.field_profiles.get(name, {}))

    def dut(self, name: str) -> DutRuntime:
        runtime = self.runtimes[name]
        runtime.start()
        return runtime

    def close(self) -> None:
        try:
            for runtime in self.runtimes.values():
                runtime.stop()
        finally:
            if self.transcript:
                self.transcript.close()
            self._keep_public_certificates()
            shutil.rmtree(self.private_dir, ignore_errors=True)

    def _keep_public_certificates(self) -> None:
        """The client certificates the harness presented are evidence (which identity the DUT trusted);
        their private keys are not — only certificates are copied to OUTDIR/pki."""
        pki = self.private_dir / "pki"
        certificates = [p for p in pki.glob("*") if p.suffix in (".der", ".pem") and not p.stem.endswith("-key")] \
            if pki.is_dir() else []
        for cert in certificates:
            data = cert.read_bytes()
            if b"PRIVATE KEY" not in data:
                (self.out_dir / "pki").mkdir(exist_ok=True)
                (self.out_dir / "pki" / cert.name).write_bytes(data)
