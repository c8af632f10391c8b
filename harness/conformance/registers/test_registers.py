"""cl. 95 registers: every energy register present and readable, in its unit, never decreasing,
and the total equal to the sum of the tariffs."""

from __future__ import annotations

import pytest

from harness.conformance.energy import (
    declared_registers,
    device_seconds_between,
    elapse_device_time,
    largest_steps_back,
    reference_power,
    snapshot,
    tolerance_pct,
)
from harness.devices.api import DeviceError
from harness.quantities import EnergyChannel, EnergyRegister, energy_registers
from harness.reporting.outcome import exc_text
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable

pytestmark = pytest.mark.dut_kind("electricity_meter")

SAMPLE_ROUNDS = 6  # KZ-95-03: rounds of back-to-back reads, with device time passing between rounds
READS_PER_ROUND = 5


@pytest.mark.check("KZ-95-01", "every energy register (A+, A-, R+, R-; total and each tariff) is declared "
                   "and readable")
def test_registers_present(dut, check):
    profile = dut.profile
    check.at_least(Msg("declared tariffs"), profile.tariff_count, 1, note=Msg("cl. 95 asks for per-tariff registers"))
    for reg in energy_registers(profile.tariff_count):
        if not profile.declares(reg.name):
            check.measure(reg.label, Msg("not declared in the profile"), passed=False, limit=Msg("declared"))
            continue
        try:
            reading = dut.device.read(reg.name)
        except DeviceError as exc:
            check.measure(reg.label, exc_text(exc), passed=False, limit=Msg("readable"))
            continue
        ok = reading.unit == reg.unit and isinstance(reading.value, int | float) and reading.value >= 0
        check.measure(reg.label, reading.value, unit=reading.unit, passed=ok, limit=Msg("a count ≥ 0 in {unit}",
                                                                                        unit=reg.unit))
    check.require()


@pytest.mark.check("KZ-95-02", "each energy total advances at the rate the reference load implies (right "
                   "unit and scale)")
def test_registers_rate(dut, check):
    totals = [r for r in declared_registers(dut) if r.tariff is None]
    if not totals:
        raise Inconclusive(Msg("the profile declares no energy totals"))
    window = dut.timing.energy_window_s
    before = snapshot(dut, totals)
    forwarded, _ = elapse_device_time(dut, window)
    after = snapshot(dut, totals)
    least, most = device_seconds_between(dut, before, after, forwarded)
    tol = tolerance_pct(dut) / 100.0
    unloaded: list[str] = []
    for reg in totals:
        power = reference_power(dut, reg)
        res = max(before.resolution(reg), after.resolution(reg))
        delta = after.value(reg) - before.value(reg)
        if power <= 0:
            # Without load a register only shows it does not creep; that it counts at the right rate is
            # untried, so it can never PASS here (a register that never counts would look the same).
            check.at_most(Msg("{label} increase without load", label=reg.label), delta, 2 * res, unit=reg.unit,
                          note=Msg("the bench applies no load on {value}: no creep beyond 2 steps",
                                   value=reg.channel.value))
            unloaded.append(f"{reg.label} (reference_load.{reg.channel.value}_{reg.channel.power_unit.lower()})")
            continue
        low = power * least / 3600.0 * (1 - tol) - 2 * res
        high = power * most / 3600.0 * (1 + tol) + 2 * res
        if power * least / 3600.0 < 10 * res:
            raise Inconclusive(Msg("{label}: {window:g} s at {power:g} {power_unit} is under 10 register steps of "
                                   "{res:g} {unit}; lengthen timing.energy_window_s", label=reg.label, window=window,
                                   power=power, power_unit=reg.channel.power_unit, res=res, unit=reg.unit))
        check.within(Msg("{label} increase", label=reg.label), delta, max(0.0, low), high, unit=reg.unit,
                     note=Msg("{power:g} {power_unit} over {least:.1f}…{most:.1f} device s", power=power,
                              power_unit=reg.channel.power_unit, least=least, most=most))
    check.require()
    if unloaded:
        raise Inconclusive(Msg("the bench applies no load on the channel of {channels}: its rate is untried; set that "
                               "rig reference_load (and the bench's load) above 0", channels=", ".join(unloaded)))


@pytest.mark.check("KZ-95-03", "energy counters never decrease")
def test_registers_monotonic(dut, check):
    regs = declared_registers(dut)
    if not regs:
        raise Inconclusive(Msg("the profile declares no energy registers"))
    worst = largest_steps_back(dut, regs, SAMPLE_ROUNDS, READS_PER_ROUND)
    for r in regs:
        check.at_most(Msg("{label} largest step back", label=r.label), worst[r.name], 0.0, unit=r.unit,
                      note=Msg("{value} reads", value=SAMPLE_ROUNDS * READS_PER_ROUND))
    check.require()


@pytest.mark.check("KZ-95-04", "each total equals the sum of its tariff registers within one resolution step")
def test_total_is_sum_of_tariffs(dut, check):
    n = dut.profile.tariff_count
    if n == 0:
        raise NotApplicable(Msg("the profile declares no tariffs (KZ-95-01 reports that as a failure)"))
    channels = [c for c in EnergyChannel
                if all(dut.profile.declares(EnergyRegister(c, t).name) for t in [None, *range(1, n + 1)])]
    if not channels:
        raise Inconclusive(Msg("no channel declares its total and every tariff register"))
    for moment in (Msg("start"), Msg("after window")):
        for channel in channels:
            total = EnergyRegister(channel)
            tariffs = [EnergyRegister(channel, t) for t in range(1, n + 1)]
            # Tariffs read before and after the total bracket it, however the counters move meanwhile.
            first = snapshot(dut, tariffs)
            tot = snapshot(dut, [total])
            last = snapshot(dut, tariffs)
            step = tot.resolution(total)
            if tot.readings[total.name].floating:  # each float register is rounded on its own
                step += sum(max(first.resolution(t), last.resolution(t)) for t in tariffs)
            low = sum(first.value(t) for t in tariffs) - step
            high = sum(last.value(t) for t in tariffs) + step
            check.within(Msg("{label} ({moment})", label=total.label,
                             moment=moment), tot.value(total), low, high, unit=total.unit,
                         note=Msg("sum of tariffs read before and after the total, ± one step"))
        if moment == "start":
            elapse_device_time(dut, dut.timing.energy_window_s)
    check.require()
