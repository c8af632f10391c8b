"""The built-in drivers, fault injectors, suites and signer, offered through the public hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.hookspecs import DriverSpec, FaultInjectorSpec, ResultStoreSpec, SignerSpec, SuiteSpec, hookimpl

_CONFORMANCE = Path(__file__).resolve().parent.parent / "conformance"


def _modbus(*args: Any, **kwargs: Any) -> Any:
    from harness.devices.modbus import ModbusDevice

    return ModbusDevice(*args, **kwargs)


def _opcua(*args: Any, **kwargs: Any) -> Any:
    from harness.devices.opcua import OpcuaDevice  # asyncua is imported only when an OPC UA device is used

    return OpcuaDevice(*args, **kwargs)


def _dlms(*args: Any, **kwargs: Any) -> Any:
    from harness.devices.dlms import DlmsDevice  # dlms-cosem is imported only when a DLMS device is used

    return DlmsDevice(*args, **kwargs)


def _amr_rest(*args: Any, **kwargs: Any) -> Any:
    from harness.devices.amr.rest import RestAmrServer  # httpx is imported only when an AMR server is used

    return RestAmrServer(*args, **kwargs)


def _process_power(runtime: Any) -> Any:
    from harness.fault_injection.power import ProcessPowerSwitch

    if runtime.process is None:
        return None
    return ProcessPowerSwitch(runtime.process, runtime.probe, runtime.faults)


def _simulator_time(runtime: Any) -> Any:
    from harness.fault_injection.time_control import SimulatorTime

    if runtime.control_port is None:
        return None
    channel = SimulatorTime(runtime.control_host, runtime.control_port)
    if getattr(runtime, "field", None) is not None:  # an AMR server: its field meters move with it
        from harness.fault_injection.field_time import field_time

        return field_time(channel, runtime.field, runtime.timing.max_wall_wait_s)
    return channel


def _simulator_tamper(runtime: Any) -> Any:
    from harness.fault_injection.tamper import SimulatorTamper

    if runtime.control_port is None:
        return None
    return SimulatorTamper(runtime.control_host, runtime.control_port)


def _simulator_alarm(runtime: Any) -> Any:
    """Alarms through a simulator's control channel, for a DUT that keeps an audit log (controllers)."""
    from harness.fault_injection.alarm import SimulatorAlarm

    if runtime.control_port is None or getattr(getattr(runtime.profile, "opcua", None), "audit_log", None) is None:
        return None
    return SimulatorAlarm(runtime.control_host, runtime.control_port, runtime.faults, runtime.name)


def _link_proxy(runtime: Any) -> Any:
    """A proxy in front of the DUT's TCP endpoint, not yet started: whoever routes a channel through it
    starts it (and closes it). None for a DUT without a TCP endpoint."""
    from harness.fault_injection.link_proxy import LinkProxy

    endpoint = runtime.endpoint or {}
    if not endpoint.get("host") or not endpoint.get("port"):
        return None
    return LinkProxy((endpoint["host"], int(endpoint["port"])), name=runtime.name, seed=runtime.seed,
                     faults=runtime.faults, dut=runtime.name)


def _serial_link_relay(runtime: Any) -> Any:
    """A relay in the middle of the DUT's simulated serial line (rig ``port: pty``), not yet started: it takes
    over the line's harness end and offers clients a new one. None for a DUT on a real serial port."""
    from harness.fault_injection.serial_relay import SerialLinkRelay

    endpoint = runtime.endpoint or {}
    if runtime.pty is None or not endpoint.get("serial_port"):
        return None
    return SerialLinkRelay(Path(endpoint["serial_port"]), runtime.state_dir, name=runtime.name,
                           faults=runtime.faults, dut=runtime.name)


def _netns_link(runtime: Any) -> Any:
    """A namespace for a DUT the harness launches, not yet created (root only). None for a DUT the
    harness does not launch, or where namespaces cannot be used (``netns_available`` says why)."""
    from harness.fault_injection.netns import NetnsLink, netns_available

    if runtime.spec.launch is None or netns_available() is not None:
        return None
    return NetnsLink(name_hint=runtime.name, faults=runtime.faults, dut=runtime.name)


def _firmware_forger(runtime: Any) -> Any:
    """Bad tek-image-v1 images for the update suite, written under OUTDIR/firmware/<dut>/. The signature
    algorithm comes from the profile's ``update.signature`` when it declares one."""
    from harness.fault_injection.firmware import FirmwareForger

    update = getattr(getattr(runtime.profile, "opcua", None), "update", None)
    return FirmwareForger(runtime.out_dir / "firmware" / runtime.name, runtime.faults, runtime.name, runtime.seed,
                          algorithm=getattr(update, "signature", None))


def _wall_time(runtime: Any) -> Any:
    from harness.fault_injection.time_control import WallTime

    return WallTime(runtime.timing.max_wall_wait_s)


@hookimpl
def harness_add_drivers() -> list[DriverSpec]:
    return [DriverSpec("modbus", _modbus, "Modbus TCP and RTU (pymodbus)"),
            DriverSpec("opcua", _opcua, "OPC UA (asyncua)"),
            DriverSpec("dlms", _dlms, "DLMS/COSEM over the TCP wrapper (dlms-cosem)"),
            DriverSpec("amr", _amr_rest, "AMR server REST contract, docs/amr-api.yaml (httpx)")]


@hookimpl
def harness_add_fault_injectors() -> list[FaultInjectorSpec]:
    return [
        FaultInjectorSpec("power", "process", _process_power, "SIGKILL the DUT process; relaunch it"),
        FaultInjectorSpec("time", "simulator", _simulator_time, "fast-forward through a simulator's control"),
        FaultInjectorSpec("time", "wall", _wall_time, "wait in real time (any device)"),
        FaultInjectorSpec("tamper", "simulator", _simulator_tamper, "cover / magnetic field through a "
                          "simulator's control channel"),
        FaultInjectorSpec("alarm", "simulator", _simulator_alarm, "raise an alarm through a simulator's control "
                          "channel (audit-log trigger matrix)"),
        FaultInjectorSpec("link", "proxy", _link_proxy, "TCP proxy per channel: cut, blackhole, delay, drop, "
                          "corrupt, flap (unprivileged)"),
        FaultInjectorSpec("serial_link", "proxy", _serial_link_relay, "relay between two pty pairs on a simulated "
                          "serial line: cut, blackhole (silence both ways; unprivileged)"),
        FaultInjectorSpec("link", "netns", _netns_link, "DUT in its own network namespace behind a veth pair: "
                          "netem, silent cut (root)"),
        FaultInjectorSpec("firmware", "tek-image-v1", _firmware_forger, "forge unsigned, wrongly signed, truncated "
                          "and corrupted images from a valid tek-image-v1 image"),
    ]


@hookimpl
def harness_add_suites() -> list[SuiteSpec]:
    return [
        SuiteSpec("registers", _CONFORMANCE / "registers", "cl. 95 energy registers: present, unit, monotonic"),
        SuiteSpec("tariffs", _CONFORMANCE / "tariffs", "cl. 95 per-tariff accumulation and switching"),
        SuiteSpec("nvm", _CONFORMANCE / "nvm", "cl. 95 non-volatile memory across power cuts"),
        SuiteSpec("clock", _CONFORMANCE / "clock", "cl. 95 date and time: readable, settable, kept, drift"),
        SuiteSpec("journal", _CONFORMANCE / "journal", "cl. 97 event journals: triggers, survival, order, "
                  "capacity, retention; cl. 69 controller audit logs: who did what, protected, kept 12 months"),
        SuiteSpec("interval_data", _CONFORMANCE / "interval_data", "cl. 31, 30, 60, 80 load profile: period, "
                  "complete days, increments vs registers, power-cut and clock-set flags"),
        SuiteSpec("failover", _CONFORMANCE / "failover", "cl. 85, 84, 71 main and reserve channels: switchover, "
                  "return, flapping and lossy links, status reporting, nothing lost"),
        SuiteSpec("buffering", _CONFORMANCE / "buffering", "cl. 83, 61 data kept through channel outages and "
                  "power loss, back-filled once and in order"),
        SuiteSpec("access_control", _CONFORMANCE / "access_control", "cl. 66, 76, 78, 94 access control: "
                  "authentication, secure channels, lockout, default credentials, roles; meters' write protection and "
                  "tamper logging (IEC 62443-3-3 SRs)"),
        SuiteSpec("documentation", _CONFORMANCE / "documentation", "cl. 50, 58, 59, 72, 79, 87, 93 (documentary): "
                  "state registry, verification, certificates, documents"),
        SuiteSpec("update", _CONFORMANCE / "update", "cl. 70 secure software update with rollback: signed images "
                  "only, automatic and operator rollback, power loss mid-update, minimum version, new-version "
                  "indication"),
        SuiteSpec("protocol", _CONFORMANCE / "protocol", "cl. 68, 81 standard protocol conformance: Modbus function "
                  "codes, exceptions 01/02/03, MBAP header, unit id, RTU CRC; OPC UA endpoints and status codes"),
        SuiteSpec("robustness", _CONFORMANCE / "robustness", "cl. 49 communication robustness (IEC 62443-3-3 SR 3.5, "
                  "SR 7.1): fuzzed frames, request and connection storms, half-open connections, while the "
                  "essential function is monitored; destructive, loopback / lab allow-list only"),
        SuiteSpec("availability", _CONFORMANCE / "availability", "cl. 67, 73 availability ≥ 99 %: a soak polling "
                  "every declared quantity (the rig's duration and interval), recovery after the rig's link faults"),
        SuiteSpec("amr", _CONFORMANCE / "amr", "cl. 62, 18, 48, 77 AMR servers against a field of meters the harness "
                  "reads itself: meter status, automatic and manual readings, CSV export, users, workstations' "
                  "role matrix, subscriber isolation, corrections with confirmation, communication diagnostics"),
    ]


@hookimpl
def harness_add_signers() -> list[SignerSpec]:
    from harness.reporting.signing import BUILTIN

    return [BUILTIN]


@hookimpl
def harness_add_result_stores() -> list[ResultStoreSpec]:
    from harness.fleet.store import DirectoryStore

    return [ResultStoreSpec("dir", DirectoryStore, "a folder (a shared mount): JOB.tar.gz and JOB.json")]
