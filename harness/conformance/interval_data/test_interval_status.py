"""cl. 31 (80) interval data, how it is qualified: the interval a power cut or a clock set touched is
flagged, and the intervals around it — which nothing touched — are not, so a head-end can tell reliable
intervals from estimated ones.

Each check first waits for a whole interval to pass undisturbed (it begins after the check started),
disturbs the next one a third of the way in, and lets one more close: three consecutive records whose
flags must read clean, flagged, clean.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from harness.conformance.interval_data.collect import (
    boundary_after,
    device_now,
    elapse_to,
    flags_text,
    load_profile_of,
    record_ending,
)
from harness.conformance.power import power_switch
from harness.intervals import IntervalData, IntervalFlag
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable

pytestmark = pytest.mark.dut_kind("electricity_meter")

CLOCK_SHIFT_S = 60  # KZ-31-05: the clock is set this far forward and straight back, inside one interval


def _disturb_one_interval(dut, period: int, disturb) -> list[tuple[datetime, IntervalData | None]]:
    """Clean interval, disturbed interval, clean interval: each one's end and the record held for it."""
    b = boundary_after(device_now(dut), period)
    step = timedelta(seconds=period)
    elapse_to(dut, b + step + step / 3)  # [b, b+P] ran undisturbed; now a third into [b+P, b+2P]
    disturb()
    now = device_now(dut)
    if now >= b + 2 * step:
        raise Inconclusive(Msg("the disturbance lasted past the end of its interval ({isoformat} ≥ {isoformat2} "
                               "device time); lengthen the period or shorten the cut", isoformat=now.isoformat(),
                               isoformat2=(b + 2 * step).isoformat()))
    elapse_to(dut, b + 3 * step + step / 3)  # [b+2P, b+3P] closed undisturbed
    records = dut.device.read_load_profile()
    return [(end, record_ending(records, end)) for end in (b + step, b + 2 * step, b + 3 * step)]


def _judge(check, flag: IntervalFlag, trio: list[tuple[datetime, IntervalData | None]], what: str) -> None:
    """Only the disturbed interval carries ``flag``; a missing record fails its line."""
    labels = (Msg("interval before"), Msg("interval with the {what}", what=what), Msg("interval after"))
    for label, (end, record), wanted in zip(labels, trio, (False, True, False), strict=True):
        check.measure(Msg("{label}: {value}", label=label,
                          value=flag.value), flags_text(record), limit=Msg("{flag} set", flag=flag.value) if wanted else
                      Msg("{flag} not set", flag=flag.value),
                      passed=record is not None and (flag in record.flags) == wanted,
                      note=Msg("interval ending {isoformat}", isoformat=end.isoformat()))
    check.require()


@pytest.mark.destructive
@pytest.mark.check("KZ-31-04", "a power cut during an interval flags that interval power-failed, and the "
                   "intervals before and after it are not flagged", also=("80",))
def test_power_cut_flagged(dut, check):
    lp = load_profile_of(dut)
    power = power_switch(dut)
    timing: dict[str, float] = {}

    def cut() -> None:
        t_off, t_on, ready = power.cut(dut.spec.power.off_time_s)
        timing.update(off=t_on - t_off, ready=ready)

    trio = _disturb_one_interval(dut, lp.capture_period_s, cut)
    check.measure(Msg("power cut"), round(timing["off"], 2), passed=True, unit="s",
                  note=Msg("a third into the middle interval; ready {ready:.2f} s after power-on",
                           ready=timing['ready']))
    _judge(check, IntervalFlag.POWER_FAILED, trio, Msg("power cut"))


@pytest.mark.check("KZ-31-05", "a clock set during an interval flags that interval clock-changed, and the "
                   "intervals before and after it are not flagged", also=("80",))
def test_clock_set_flagged(dut, check):
    lp = load_profile_of(dut)
    if dut.profile.clock is None or not dut.profile.clock.writable:
        raise NotApplicable(Msg("the profile declares the clock not writable: no clock set can happen"))
    shift = timedelta(seconds=CLOCK_SHIFT_S)

    def set_forward_and_back() -> None:
        dut.device.set_clock(device_now(dut) + shift)
        dut.device.set_clock(device_now(dut) - shift)

    trio = _disturb_one_interval(dut, lp.capture_period_s, set_forward_and_back)
    check.measure(Msg("clock sets"), 2, passed=True, note=Msg("{clock_shift_s} s forward and straight back, a third "
                                                         "into the middle interval", clock_shift_s=CLOCK_SHIFT_S))
    _judge(check, IntervalFlag.CLOCK_CHANGED, trio, Msg("clock set"))
