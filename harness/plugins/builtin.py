"""The built-in drivers, fault injectors, suites and signer, offered through the public hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.hookspecs import DriverSpec, FaultInjectorSpec, SignerSpec, SuiteSpec, hookimpl

_CONFORMANCE = Path(__file__).resolve().parent.parent / "conformance"


def _modbus(*args: Any, **kwargs: Any) -> Any:
    from harness.devices.modbus import ModbusDevice

    return ModbusDevice(*args, **kwargs)


def _process_power(runtime: Any) -> Any:
    from harness.fault_injection.power import ProcessPowerSwitch

    if runtime.process is None:
        return None
    return ProcessPowerSwitch(runtime.process, runtime.probe, runtime.faults)


def _simulator_time(runtime: Any) -> Any:
    from harness.fault_injection.time_control import SimulatorTime

    if runtime.control_port is None:
        return None
    return SimulatorTime(runtime.control_host, runtime.control_port)


def _simulator_tamper(runtime: Any) -> Any:
    from harness.fault_injection.tamper import SimulatorTamper

    if runtime.control_port is None:
        return None
    return SimulatorTamper(runtime.control_host, runtime.control_port)


def _link_proxy(runtime: Any) -> Any:
    """A proxy in front of the DUT's TCP endpoint, not yet started: whoever routes a channel through it
    starts it (and closes it). None for a DUT without a TCP endpoint."""
    from harness.fault_injection.link_proxy import LinkProxy

    endpoint = runtime.endpoint or {}
    if not endpoint.get("host") or not endpoint.get("port"):
        return None
    return LinkProxy((endpoint["host"], int(endpoint["port"])), name=runtime.name, seed=runtime.seed,
                     faults=runtime.faults, dut=runtime.name)


def _netns_link(runtime: Any) -> Any:
    """A namespace for a DUT the harness launches, not yet created (root only). None for a DUT the
    harness does not launch, or where namespaces cannot be used (``netns_available`` says why)."""
    from harness.fault_injection.netns import NetnsLink, netns_available

    if runtime.spec.launch is None or netns_available() is not None:
        return None
    return NetnsLink(name_hint=runtime.name, faults=runtime.faults, dut=runtime.name)


def _wall_time(runtime: Any) -> Any:
    from harness.fault_injection.time_control import WallTime

    return WallTime(runtime.timing.max_wall_wait_s)


@hookimpl
def harness_add_drivers() -> list[DriverSpec]:
    return [DriverSpec("modbus", _modbus, "Modbus TCP and RTU (pymodbus)")]


@hookimpl
def harness_add_fault_injectors() -> list[FaultInjectorSpec]:
    return [
        FaultInjectorSpec("power", "process", _process_power, "SIGKILL the DUT process; relaunch it"),
        FaultInjectorSpec("time", "simulator", _simulator_time, "fast-forward through a simulator's control"),
        FaultInjectorSpec("time", "wall", _wall_time, "wait in real time (any device)"),
        FaultInjectorSpec("tamper", "simulator", _simulator_tamper, "cover / magnetic field through a "
                          "simulator's control channel"),
        FaultInjectorSpec("link", "proxy", _link_proxy, "TCP proxy per channel: cut, blackhole, delay, drop, "
                          "corrupt, flap (unprivileged)"),
        FaultInjectorSpec("link", "netns", _netns_link, "DUT in its own network namespace behind a veth pair: "
                          "netem, silent cut (root)"),
    ]


@hookimpl
def harness_add_suites() -> list[SuiteSpec]:
    return [
        SuiteSpec("registers", _CONFORMANCE / "registers", "cl. 95 energy registers: present, unit, monotonic"),
        SuiteSpec("tariffs", _CONFORMANCE / "tariffs", "cl. 95 per-tariff accumulation and switching"),
        SuiteSpec("nvm", _CONFORMANCE / "nvm", "cl. 95 non-volatile memory across power cuts"),
        SuiteSpec("clock", _CONFORMANCE / "clock", "cl. 95 date and time: readable, settable, kept, drift"),
        SuiteSpec("journal", _CONFORMANCE / "journal", "cl. 97 event journals: triggers, survival, order, "
                  "capacity, retention"),
        SuiteSpec("interval_data", _CONFORMANCE / "interval_data", "cl. 31, 30, 60, 80 load profile: period, "
                  "complete days, increments vs registers, power-cut and clock-set flags"),
        SuiteSpec("failover", _CONFORMANCE / "failover", "cl. 85, 84, 71 main and reserve channels: switchover, "
                  "return, flapping and lossy links, status reporting, nothing lost"),
        SuiteSpec("buffering", _CONFORMANCE / "buffering", "cl. 83, 61 data kept through channel outages and "
                  "power loss, back-filled once and in order"),
        SuiteSpec("documentation", _CONFORMANCE / "documentation", "cl. 50, 58, 59, 72, 79, 87, 93 (documentary): "
                  "state registry, verification, certificates, documents"),
    ]


@hookimpl
def harness_add_signers() -> list[SignerSpec]:
    from harness.reporting.signing import BUILTIN

    return [BUILTIN]
