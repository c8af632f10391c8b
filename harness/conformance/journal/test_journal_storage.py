"""cl. 97 event journals, how they are stored: sequence numbers without gaps or duplicates and time
that only runs backwards across a logged clock set; declared behaviour when full; and how much
history the journal keeps at the declared event rate over 12 months of device time (cl. 69)."""

from __future__ import annotations

import itertools
import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from harness.conformance.cleanup import restoring
from harness.conformance.journal.bulk import bulk_provocation, bulk_provocations
from harness.conformance.journal.provoke import journal_of, new_entries
from harness.events import EventKind, WhenFull
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("electricity_meter", "heat_meter")

YEAR_DAYS = 365
ORDER_EVENTS = 8  # events KZ-97-04 provokes (bulk.py), so a journal of any age has enough to judge


@pytest.mark.check("KZ-97-04", "sequence numbers have no gaps or duplicates, and timestamps never go backwards "
                   "except across a logged clock set")
def test_sequence_and_time_order(dut, check):
    journal = journal_of(dut)
    available, _ = bulk_provocations(dut)
    device = dut.device
    settable = dut.profile.clock is not None and dut.profile.clock.writable
    if available:
        bulk = available[0]
        # the clock is put right last, after the provocation's own restore (which may set the clock too)
        with restoring(lambda: device.set_clock(datetime.now(UTC)) if settable else None), restoring(bulk.restore):
            for i in range(ORDER_EVENTS):
                if settable and i == ORDER_EVENTS // 2:  # a backward step the journal must explain
                    device.set_clock(datetime.now(UTC) - timedelta(hours=1))
                bulk.step(i)
    entries = device.read_journal()
    if len(entries) < 2:
        raise Inconclusive(Msg("the journal holds {n} entries and the bench could not provoke more", n=len(entries)))
    modulo = journal.sequence_modulo
    seqs = [e.sequence for e in entries]
    gaps = [(a, b) for a, b in itertools.pairwise(seqs) if (b - a) % modulo != 1]
    check.equal(Msg("duplicate sequence numbers"), len(seqs) - len(set(seqs)), 0)
    check.equal(Msg("sequence steps other than +1"), len(gaps), 0,
                note=Msg("{n} entries #{value}..#{value2}", n=len(entries), value=seqs[0], value2=seqs[-1])
                     + (Msg("; first: #{seq} -> #{next}", seq=gaps[0][0], next=gaps[0][1]) if gaps else ""))
    backwards = []
    for a, b in itertools.pairwise(entries):
        if b.timestamp < a.timestamp and EventKind.CLOCK_SET not in (a.kind, b.kind):
            backwards.append((a, b))
    explained = sum(1 for a, b in itertools.pairwise(entries) if b.timestamp < a.timestamp) - len(backwards)
    check.equal(Msg("backward time steps not across a logged clock set"), len(backwards), 0,
                note=Msg("{explained} backward step(s) across a clock set", explained=explained)
                     + (Msg("; first: #{seq} -> #{next}", seq=backwards[0][0].sequence,
                            next=backwards[0][1].sequence) if backwards else ""))
    chart_timeline(check, entries)
    check.require()


def chart_timeline(check, entries) -> None:
    """The journal as a picture: each entry by device time and sequence number, one series per kind."""
    t0 = entries[0].timestamp
    series: dict[str, list[tuple[float, float]]] = {}
    for e in entries:
        label = e.kind.value if e.kind else f"code {e.code} (unmapped)"
        series.setdefault(label, []).append(((e.timestamp - t0).total_seconds() / 3600.0, e.sequence))
    check.chart(Msg("Journal timeline"), series, kind="scatter",
                x_label=Msg("device time since the first entry held, h"),
                y_label=Msg("sequence number"))


@pytest.mark.destructive
@pytest.mark.check("KZ-97-05", "filled past its capacity the journal behaves as declared (oldest overwritten "
                   "and count = capacity, or recording stops)")
def test_capacity_when_full(dut, check):
    journal = journal_of(dut)
    bulk = bulk_provocation(dut)
    before = dut.device.read_journal()
    extra = max(3, journal.capacity // 20)
    generated = journal.capacity - len(before) + extra
    t0 = time.monotonic()
    with restoring(bulk.restore):  # (the restoring action is logged too: read before it)
        for i in range(generated):
            bulk.step(i)
        after = dut.device.read_journal()
    took = time.monotonic() - t0
    new = new_entries(before, after)
    ours = [e for e in new if bulk.logged(e)]
    # A device may log events of its own meanwhile (an idle interface's channel_down, say): they take
    # slots too, and may be newer than our last provocation.
    own = [e for e in new if not bulk.logged(e)]
    check.equal(Msg("entries held when full"), len(after), journal.capacity,
                note=Msg("{generated} events provoked onto {n} entries in {took:.1f} s: {how}", generated=generated,
                         n=len(before), took=took, how=bulk.how))
    if journal.when_full == WhenFull.OVERWRITE_OLDEST:
        kinds = ", ".join(str(e.kind) for e in own)
        taken = Msg("; {n} slots taken by the device's own events ({kinds})", n=len(own), kinds=kinds) if own else ""
        check.equal(Msg("provoked events held (the newest must be kept)"), len(ours),
                    min(generated, journal.capacity - len(own)),
                    note=Msg("declared overwrite_oldest{taken}", taken=taken))
        newest = next((e for e in reversed(after) if bulk.logged(e) or e not in own), None)
        newest_first = newest is not None and bulk.logged(newest)
        check.measure(Msg("newest entry is the last event provoked"), newest_first, passed=newest_first,
                      note=Msg("entries the device logged on its own after it are passed over"))
    else:
        check.equal(Msg("provoked events held before recording stopped"), len(ours), journal.capacity - len(before),
                    note=Msg("declared stop: recording stops when full; {value} events not recorded",
                             value=generated - len(ours)))
    check.require()


@pytest.mark.destructive
@pytest.mark.check("KZ-97-06", "retention: at the declared event rate over 12 months of device time, the "
                   "journal holds what its capacity promises; the history held is reported (cl. 69: 12 months)")
def test_retention_over_a_year(dut, check):
    journal = journal_of(dut)
    if not dut.time.fast:
        raise Inconclusive(Msg("12 months of device time need a DUT whose time can be fast-forwarded (a "
                               "simulator's control channel); on a real device retention follows from capacity ÷ "
                               "rate only"))
    bulk = bulk_provocation(dut)
    rate = journal.events_per_day
    n = math.ceil(YEAR_DAYS * rate)
    interval = 86400.0 / rate
    before = dut.device.read_journal()
    t0 = time.monotonic()
    with restoring(bulk.restore):  # (the restoring action is logged too: read before it)
        for i in range(n):
            dut.time.elapse(interval)
            bulk.step(i)
        after = dut.device.read_journal()
    wall = time.monotonic() - t0
    ours = [e for e in new_entries(before, after) if bulk.logged(e)]
    if journal.when_full == WhenFull.OVERWRITE_OLDEST:
        expected = min(n, journal.capacity)
    else:
        expected = min(n, max(0, journal.capacity - len(before)))
    check.measure(Msg("events generated"), n, passed=True,
                  note=Msg("{rate:g}/day (declared) for {year_days} days: {how}", rate=rate, year_days=YEAR_DAYS,
                           how=bulk.how))
    check.at_least(Msg("generated events still held"), len(ours), expected,
                   note=Msg("capacity {capacity}, {value}", capacity=journal.capacity, value=journal.when_full.value))
    days = ((ours[-1].timestamp - ours[0].timestamp).total_seconds() + interval) / 86400 if ours else 0.0
    promised = journal.capacity / rate
    check.measure(Msg("history held"), round(days, 1), passed=True, unit="d",
                  limit=Msg("≥ {year_days} d for control systems (cl. 69); informative for meters",
                            year_days=YEAR_DAYS),
                  note=Msg("capacity ÷ declared rate = {promised:.0f} d; {covers}", promised=promised,
                           covers=Msg("covers 12 months") if days >= YEAR_DAYS - 1 else Msg("less than 12 months")))
    check.measure(Msg("wall time"), round(wall, 2), passed=True, unit="s", note=Msg("simulated time"))
    check.require()
