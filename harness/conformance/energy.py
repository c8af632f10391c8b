"""Helpers the counter suites share: snapshots of counter registers, device time between them, the
energy a load implies. Snapshots and step-back sampling take any counter (cl. 95 energy registers,
cl. 96 heat, volume and mass counters) by canonical name or as an ``EnergyRegister``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.devices.api import Reading
from harness.quantities import EnergyRegister, energy_registers
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive


@dataclass(frozen=True)
class Snapshot:
    """Energy registers read together, with the harness wall times around the whole read."""

    readings: dict[str, Reading]

    @property
    def t_first_sent(self) -> float:
        return min(r.t_sent for r in self.readings.values())

    @property
    def t_last_received(self) -> float:
        return max(r.t_received for r in self.readings.values())

    def value(self, reg: EnergyRegister | str) -> float:
        return float(self.readings[_name(reg)].value)

    def resolution(self, reg: EnergyRegister | str) -> float:
        return float(self.readings[_name(reg)].resolution or 0.0)


def _name(q: EnergyRegister | str) -> str:
    return q if isinstance(q, str) else q.name


def declared_registers(dut: Any) -> list[EnergyRegister]:
    """The cl. 95 registers this DUT's profile declares (the missing ones are KZ-95-01's business)."""
    return [r for r in energy_registers(dut.profile.tariff_count) if dut.profile.declares(r.name)]


def snapshot(dut: Any, regs: Sequence[EnergyRegister | str]) -> Snapshot:
    return Snapshot(dut.device.read_many([_name(r) for r in regs]))


def largest_steps_back(dut: Any, regs: Sequence[EnergyRegister | str], rounds: int,
                       reads_per_round: int) -> dict[str, float]:
    """The largest decrease seen on each counter between consecutive snapshots, by name.

    Rounds of back-to-back reads (a glitch may show on any single read) with device time passing
    between rounds (a counter may step back only when it carries over).
    """
    worst = {_name(r): 0.0 for r in regs}
    previous = None
    for _ in range(rounds):
        for _ in range(reads_per_round):
            current = snapshot(dut, regs)
            if previous is not None:
                for r in regs:
                    worst[_name(r)] = max(worst[_name(r)], previous.value(r) - current.value(r))
            previous = current
        elapse_device_time(dut, dut.timing.energy_window_s / rounds)
    return worst


def reference_power(dut: Any, reg: EnergyRegister) -> float:
    """The bench's reference load on the register's channel (W or var); INCONCLUSIVE if undeclared."""
    load = dut.spec.reference_load
    if load is None:
        raise Inconclusive(Msg("the rig declares no reference_load for this DUT, so the expected energy is unknown"))
    return load.power_of(reg.channel.value)


def tolerance_pct(dut: Any) -> float:
    return dut.spec.reference_load.tolerance_pct if dut.spec.reference_load else 0.0


def elapse_device_time(dut: Any, seconds: float) -> tuple[float, float]:
    """Let ``seconds`` of device time pass; returns (device seconds requested, wall seconds it took)."""
    import time

    t0 = time.time()
    dut.time.elapse(seconds)
    return (seconds if dut.time.fast else 0.0), time.time() - t0


def device_seconds_between(dut: Any, before: Snapshot, after: Snapshot, fast_forwarded: float) -> tuple[float, float]:
    """Device seconds in which the meter could have counted between two snapshots: (least, most).

    Between the end of the first read and the start of the second the meter certainly ran; it may
    also have counted during the reads themselves. A simulator adds what it was fast-forwarded.
    """
    least = fast_forwarded + max(0.0, after.t_first_sent - before.t_last_received)
    most = fast_forwarded + max(0.0, after.t_last_received - before.t_first_sent)
    return least, most
