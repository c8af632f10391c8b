"""cl. 83 reserve channels and data kept through failures and power outages, cl. 61 uninterrupted
operation with backup archiving — for a DUT that pushes its interval data. Every channel is cut
for several intervals of device time, power is cut during the outage and in the middle of an
interval; afterwards every interval must arrive exactly once, in order, with consistent values,
and the interval with the power cut must say so."""

from __future__ import annotations

import contextlib
import itertools
import math

import pytest

from harness.conformance.power import power_switch
from harness.conformance.uplink import (
    PushedRecord,
    baseline,
    capture_period,
    device_utc,
    nothing_lost_since,
    records,
    settle,
    uplink_of,
)
from harness.reporting.texts import Msg

pytestmark = pytest.mark.dut_kind("data_concentrator")

OUTAGE_INTERVALS = 8
POWER_FAILED = 1  # the status bit the pushed record carries (IntervalRecord contract: DLMS-style)


@contextlib.contextmanager
def _all_channels_cut(dut):
    links = [dut.upstream.link(name) for name in dut.upstream.channels]
    try:
        for link in links:
            link.cut()
        yield
    finally:
        for link in links:
            link.restore()


def _values_consistent(check, recs: list[PushedRecord], before: PushedRecord, period: int, label: str) -> None:
    """Each record's increments equal the change of its totals since the previous record, ends step by
    one period, and the first one continues from the last record before the outage."""
    chain = [before, *sorted({r.seq: r for r in recs}.values(), key=lambda r: r.seq)]
    bad_sums, bad_steps = [], []
    for prev, cur in itertools.pairwise(chain):
        if any(cur.totals.get(ch, 0) - prev.totals.get(ch, 0) != inc for ch, inc in cur.increments.items()):
            bad_sums.append(cur.seq)
        if cur.end - prev.end != period * (cur.seq - prev.seq):
            bad_steps.append(cur.seq)
    check.equal(Msg("{label}: records whose increments ≠ change of totals", label=label), len(bad_sums), 0,
                note=Msg("seq {seqs}", seqs=bad_sums[:10]) if bad_sums
                else Msg("totals continue across the outage"))
    check.equal(Msg("{label}: records whose end time is not one period after the previous",
                    label=label), len(bad_steps), 0,
                note=Msg("seq {seqs}", seqs=bad_steps[:10]) if bad_steps else Msg("period {period} s", period=period))


def _arrival_order(check, recs: list[PushedRecord], label: str) -> None:
    arrived = [r.seq for r in sorted(recs, key=lambda r: r.t)]
    back = sum(1 for a, b in itertools.pairwise(arrived) if b < a)
    check.equal(Msg("{label}: records that arrived before an older one", label=label), back, 0,
                note=Msg("back-fill must go oldest first"))


@pytest.mark.check("KZ-83-01", "with every channel cut for several intervals of device time, every buffered "
                   "interval arrives exactly once, in order and with consistent values when a channel returns")
def test_backfill_after_outage(dut, check):
    uplink = uplink_of(dut)
    headend = dut.upstream.headend
    period = capture_period(dut)
    base = baseline(dut, uplink)
    before, mark = base.last, base.mark
    with _all_channels_cut(dut):
        for _ in range(OUTAGE_INTERVALS):
            dut.time.elapse(period)
    settle(dut, uplink, "main")
    recs = [r for r in records(headend.after(mark)) if r.seq > before.seq]
    check.at_least(Msg("intervals closed during the outage and delivered"), len({r.seq for r in recs}),
                   OUTAGE_INTERVALS)
    nothing_lost_since(check, dut, base, allowed_duplicates=0, label="outage")
    _arrival_order(check, recs, "outage")
    _values_consistent(check, recs, before, period, "outage")
    check.require()


@pytest.mark.destructive
@pytest.mark.check("KZ-83-02", "records buffered during an outage survive a power cut and are still delivered")
def test_buffer_survives_power_cut(dut, check):
    uplink = uplink_of(dut)
    power = power_switch(dut)
    headend = dut.upstream.headend
    period = capture_period(dut)
    base = baseline(dut, uplink)
    before, mark = base.last, base.mark
    with _all_channels_cut(dut):
        for _ in range(OUTAGE_INTERVALS // 2):
            dut.time.elapse(period)
        buffered_before_cut = list(range(before.seq + 1, before.seq + 1 + OUTAGE_INTERVALS // 2))
        power.cut(dut.spec.power.off_time_s)
        for _ in range(OUTAGE_INTERVALS // 2):
            dut.time.elapse(period)
    settle(dut, uplink, "main")
    recs = [r for r in records(headend.after(mark)) if r.seq > before.seq]
    got = {r.seq for r in recs}
    lost = [s for s in buffered_before_cut if s not in got]
    check.equal(Msg("records buffered before the power cut and lost"), len(lost), 0,
                note=Msg("seq {seqs}", seqs=lost) if lost
                else Msg("seq {first}…{last} delivered", first=buffered_before_cut[0], last=buffered_before_cut[-1]))
    nothing_lost_since(check, dut, base, allowed_duplicates=0, label="outage with power cut")
    _arrival_order(check, recs, "outage with power cut")
    check.require()


@pytest.mark.destructive
@pytest.mark.check("KZ-61-01", "a power cut in the middle of an interval flags that interval (power failed); the "
                   "intervals around it are intact and unflagged")
def test_power_cut_mid_interval_is_flagged(dut, check):
    uplink = uplink_of(dut)
    power = power_switch(dut)
    headend = dut.upstream.headend
    period = capture_period(dut)
    base = baseline(dut, uplink)
    before, mark = base.last, base.mark
    now = device_utc(dut)  # cut in the middle of what is left of the interval in progress
    dut.time.elapse(((math.floor(now / period) + 1) * period - now) / 2)
    cut_at = device_utc(dut)
    power.cut(dut.spec.power.off_time_s)
    back_at = device_utc(dut)
    settle(dut, uplink, "main")
    recs = sorted({r.seq: r for r in records(headend.after(mark)) if r.seq > before.seq}.values(),
                  key=lambda r: r.seq)
    # The intervals the outage touched, by their end times on the device clock: the one the cut fell
    # in through the one the power came back in.
    touched = {r.seq for r in recs if r.end - period < back_at + 1 and r.end > cut_at - 1}
    cut_interval = next((r for r in recs if r.end - period <= cut_at < r.end), None)
    check.equal(Msg("the interval with the power cut is flagged power-failed"),
                bool(cut_interval and cut_interval.status & POWER_FAILED), True,
                note=Msg("interval ending {end} (seq {seq})", end=cut_interval.end,
                         seq=cut_interval.seq) if cut_interval
                else Msg("no record of the interval with the cut arrived"))
    flagged_elsewhere = [r.seq for r in recs if r.status & POWER_FAILED and r.seq not in touched]
    check.equal(Msg("intervals outside the outage flagged power-failed"), len(flagged_elsewhere), 0,
                note=Msg("seq {seqs}", seqs=flagged_elsewhere) if flagged_elsewhere
                else Msg("outage touched seq {seqs}", seqs=sorted(touched)))
    nothing_lost_since(check, dut, base, allowed_duplicates=0, label="power cut")
    check.require()
