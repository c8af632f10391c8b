"""cl. 31 (30, 60, 80) interval data, how it is captured: a capture period of at most 15 minutes that the
records really keep, a day of records complete and on the boundaries, and increments that add up to what
the energy registers advanced over the same day."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from harness.conformance.interval_data.collect import (
    DAY_S,
    MAX_PERIOD_S,
    boundary_after,
    bracket,
    device_now,
    load_profile_of,
    need_fast_time,
    new_records,
)
from harness.intervals import IntervalFlag
from harness.quantities import EnergyRegister
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("electricity_meter")

SPACING_PERIODS = 5  # KZ-31-01: declared periods watched, so a device keeping a longer one still shows two
BRACKET_MARGIN_S = 5.0  # KZ-31-03: registers read this much device time before and after a boundary


@pytest.mark.check("KZ-31-01", "the declared capture period is at most 15 minutes and consecutive records are "
                   "spaced by exactly that period", also=("30",))
def test_capture_period(dut, check):
    lp = load_profile_of(dut)
    period = lp.capture_period_s
    check.at_most(Msg("declared capture period"), period, MAX_PERIOD_S, unit="s",
                  note=Msg("cl. 31: data collected continuously at intervals down to 15 minutes"))
    check.require()  # a declared period over 15 minutes fails whatever the records show
    records = dut.device.read_load_profile()
    if dut.time.fast or len(records) < SPACING_PERIODS:  # watch new records close
        before = records
        dut.time.elapse(SPACING_PERIODS * period)  # INCONCLUSIVE on a real device that cannot wait this long
        records = new_records(before, dut.device.read_load_profile())
        check.at_least(Msg("records closed"), len(records), SPACING_PERIODS - 1, unit="records",
                       note=Msg("in {spacing_periods} declared periods of device time",
                                spacing_periods=SPACING_PERIODS))
    else:  # a real meter already holds its history: judge the newest of it rather than wait
        records = records[-SPACING_PERIODS:]
    pairs = [(a, b) for a, b in itertools.pairwise(records)
             if IntervalFlag.CLOCK_CHANGED not in a.flags | b.flags]
    if not pairs:
        check.require()
        raise Inconclusive(Msg("no two consecutive records without a clock change among {n} to compare",
                               n=len(records)))
    spacings = [(b.end - a.end).total_seconds() for a, b in pairs]
    wrong = [s for s in spacings if s != period]
    check.equal(Msg("spacings other than the declared period"), len(wrong), 0, unit="records",
                note=Msg("{n} consecutive pairs; spacings seen: {items}", n=len(pairs),
                         items=', '.join(f'{s:g} s' for s in sorted(set(spacings)))))
    check.require()


@pytest.mark.check("KZ-31-02", "a day of device time yields a complete day of records: 86400/period of them, "
                   "each ending on a period boundary, without gaps or duplicates", also=("30", "60", "80"))
def test_day_complete(dut, check):
    lp = load_profile_of(dut)
    need_fast_time(dut, "a day of interval records")
    period = lp.capture_period_s
    per_day = DAY_S // period
    if lp.capacity < per_day:
        raise Inconclusive(Msg("the declared capacity {capacity} holds less than a day ({per_day} records); the "
                               "day cannot be read back at once", capacity=lp.capacity, per_day=per_day))
    before = dut.device.read_load_profile()
    t0 = device_now(dut)
    dut.time.elapse(DAY_S)
    t1 = device_now(dut)
    new = new_records(before, dut.device.read_load_profile())
    first = boundary_after(t0, period)
    expected = []
    while first <= t1:
        expected.append(first)
        first += timedelta(seconds=period)
    day = [r for r in new if t0 < r.end <= t1]
    ends = [r.end for r in day]
    check.equal(Msg("records closed over the day"), len(day), len(expected), unit="records",
                note=Msg("device time {isoformat} … {isoformat2}, period {period} s; {value} new record(s) outside "
                         "it", isoformat=t0.isoformat(), isoformat2=t1.isoformat(), period=period,
                         value=len(new) - len(day)))
    off = [e for e in ends if e.timestamp() % period]
    check.equal(Msg("end times off a period boundary"), len(off), 0, unit="records",
                note=Msg("first: {isoformat}",
                         isoformat=off[0].isoformat()) if off else Msg("every end on a multiple of the period (UTC)"))
    missing = sorted(set(expected) - set(ends))
    check.equal(Msg("intervals missing (gaps)"), len(missing), 0, unit="intervals",
                note=Msg("first missing end: {end}", end=missing[0].isoformat()) if missing else "")
    check.equal(Msg("duplicate end times"), len(ends) - len(set(ends)), 0, unit="records")
    modulo = lp.sequence_modulo  # a u16 record number rolls over; None: the device keeps no record number
    if modulo is not None and len(day) > 1:
        steps = [(a.sequence, b.sequence) for a, b in itertools.pairwise(day)
                 if ((b.sequence or 0) - (a.sequence or 0)) % modulo != 1]
        check.equal(Msg("sequence steps other than +1"), len(steps), 0,
                    note=Msg("first: #{seq} -> #{next}", seq=steps[0][0], next=steps[0][1]) if steps
                    else f"#{day[0].sequence}…#{day[-1].sequence}")
    series: dict[str, list[tuple[float, float]]] = {}
    for r in day:
        for channel, value in r.increments.items():
            series.setdefault(f"{channel.symbol} ({channel.unit})", []).append(
                ((r.end - t0).total_seconds() / 3600.0, value))
    check.chart(Msg("Energy per interval over the day"), series, kind="step",
                x_label=Msg("device time, h from the start"),
                y_label=Msg("increment per interval (Wh / varh)"))
    check.require()


@pytest.mark.check("KZ-31-03", "over a day the increments of each channel add up to its energy register's "
                   "difference within the register and record resolution", also=("80",))
def test_increments_match_registers(dut, check):
    lp = load_profile_of(dut)
    need_fast_time(dut, "a day of interval records")
    period = lp.capture_period_s
    fields = {ch: step for ch, step in lp.record_steps().items() if dut.profile.declares(EnergyRegister(ch).name)}
    if not fields:
        raise Inconclusive(Msg("no channel the load profile records has a declared total register to compare with"))
    names = [EnergyRegister(ch).name for ch in fields]
    b0 = boundary_after(device_now(dut) + timedelta(seconds=2 * BRACKET_MARGIN_S), period)
    b1 = b0 + timedelta(seconds=DAY_S)
    start = bracket(dut, names, b0, BRACKET_MARGIN_S)
    before = dut.device.read_load_profile()
    end = bracket(dut, names, b1, BRACKET_MARGIN_S)
    day = [r for r in new_records(before, dut.device.read_load_profile()) if b0 < r.end <= b1]
    check.measure(Msg("records summed"), len(day), passed=True, unit="records",
                  note=Msg("ends in ({isoformat}, {isoformat2}]; completeness is KZ-31-02's", isoformat=b0.isoformat(),
                           isoformat2=b1.isoformat()))
    for channel, step in fields.items():
        reg = EnergyRegister(channel)
        summed = sum(r.increments.get(channel, 0.0) for r in day)
        res = max(s.resolution(reg) for s in (*start, *end))
        low = end[0].value(reg) - start[1].value(reg) - 2 * res - step
        high = end[1].value(reg) - start[0].value(reg) + 2 * res + step
        check.within(Msg("{label}: sum of the day's increments", label=reg.label), summed, low, high, unit=reg.unit,
                     note=Msg("register difference over the day bracketed by reads {bracket_margin_s:g} s either "
                              "side of each boundary, ± 2 register steps of {res:g} and one record step of "
                              "{factor:g} {unit}", bracket_margin_s=BRACKET_MARGIN_S, res=res, factor=step,
                              unit=reg.unit))
    check.require()
