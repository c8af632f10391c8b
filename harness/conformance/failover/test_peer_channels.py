"""cl. 85 main and reserve channel, cl. 84 link monitoring — for a DUT whose *peer* switches: a
meter with two interfaces (say Ethernet and RS-485) that serve the same data. The harness, as the
head-end, cuts the main interface with the rig's link fault and keeps reading the reserve; the
device must not be disturbed on the reserve, must serve on the main again once it returns, and
must show and log the outage. Limits come from the profile's ``interfaces.down_after_s``."""

from __future__ import annotations

from datetime import datetime

import pytest

from harness.conformance.bounds import EVENT_TIMESTAMP
from harness.conformance.journal.provoke import new_entries
from harness.conformance.peer_channels import Outage, Sample, outage_for, status_bits
from harness.conformance.uplink import CADENCE_S, patience
from harness.events import EventKind
from harness.quantities import IDENTITY_QUANTITIES, LINK_STATUS
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("electricity_meter", "heat_meter")
STAMP_RESOLUTION_S = 1.0  # journal stamps are whole seconds on most meters (a floor, never a rounding up)


def _continuity(check, o: Outage, samples: list[Sample], what: str) -> None:
    """Identity the same and every counter non-decreasing (by one resolution step at most) across
    ``samples`` in time order — whichever interface each came from. Sorted here: the reserve is read on
    after main returns, so "the reserve since the cut, then main since the restore" interleave in time."""
    good = sorted((s for s in samples if not s.error), key=lambda s: s.t)
    for q in IDENTITY_QUANTITIES:
        seen = {str(s.values[q]) for s in good if q in s.values}
        if seen:
            check.equal(Msg("{q} on both interfaces ({what})", q=q,
                            what=what), len(seen), 1, note=", ".join(sorted(seen)))
    worst, where = 0.0, ""
    for q in o.counters:
        previous = None
        for s in good:
            if previous is not None and previous.values[q] - s.values[q] > worst:
                worst = float(previous.values[q] - s.values[q])
                where = f"{q}: {previous.interface} {previous.values[q]} then {s.interface} {s.values[q]}"
            previous = s
    check.at_most(Msg("largest step back of a counter ({what})", what=what), worst, 0.0, note=where or Msg("none"))


@pytest.mark.check("KZ-85-03", "with the main interface cut, the reserve interface keeps serving the same data "
                   "without a single failed request")
def test_reserve_serves_while_main_cut(dut, check):
    o = outage_for(dut, check.id)
    if o.main_during_cut and not o.main_during_cut[0].error:
        raise Inconclusive(Msg("the main interface still answered during the cut: the rig's link fault did not take"))
    before = o.on("main", end=o.t_cut)[:3] + o.on("reserve", end=o.t_cut)
    before.sort(key=lambda s: s.t)
    during = o.on("reserve", o.t_cut, o.t_restore)
    failed = [s for s in during if s.error]
    check.equal(Msg("reserve requests failed while main was cut"), len(failed), 0,
                note=Msg("of {n}; first: {error}", n=len(during), error=failed[0].error) if failed
                else Msg("of {n}", n=len(during)))
    check.at_least(Msg("reserve reads while main was cut"), len(during), 2)
    _continuity(check, o, before + during, "before and during the cut")
    check.require()


@pytest.mark.check("KZ-85-04", "when the main interface returns it serves again, with data continuous with what "
                   "the reserve served meanwhile")
def test_main_serves_again(dut, check):
    o = outage_for(dut, check.id)
    limit = patience(o.interfaces.down_after_s)
    if o.t_main_back is None:
        check.measure(Msg("main answers again after the restore"), Msg("never"), passed=False,
                      limit=Msg("≤ {limit:g} s",
                                                                                               limit=limit),
                      note=next((s.error for s in o.on("main", o.t_restore) if s.error), ""))
    else:
        check.at_most(Msg("main answers again after the restore"), round(o.t_main_back - o.t_restore, 3), limit,
                      unit="s", note=Msg("a reconnect; nothing is declared for it, so the limit is the outage "
                                         "patience"))
        _continuity(check, o, o.on("reserve", o.t_cut) + o.on("main", o.t_restore), "the reserve, then main")
    check.require()


@pytest.mark.check("KZ-84-03", "the link status shows the main interface down during the outage and up again "
                   "after it returns, the reserve up throughout")
def test_link_status_reflects_outage(dut, check):
    o = outage_for(dut, check.id)
    if LINK_STATUS not in o.watched:
        check.measure(Msg("link status declared"), False, passed=False, limit=Msg("= True"),
                      note=Msg("the profile declares no `interfaces.link_status` point: the device reports no link "
                               "status (cl. 84 requires link monitoring)"))
        check.require()
    down_after = o.interfaces.down_after_s
    shown = [(s, status_bits(dut, s)) for s in o.samples if status_bits(dut, s) is not None]
    # An interface idle for down_after_s is rightly shown down (a communication timeout): the status counts from
    # the moment both interfaces have been used — a DUT whose reserve sat idle during earlier suites is no fault.
    in_use = max((min(s.t for s in o.on(name)) for name in ("main", "reserve")), default=o.t_cut)
    before = [b for s, b in shown if in_use <= s.t < o.t_cut]
    check.equal(Msg("both interfaces shown up before the cut, once both were in use"),
                bool(before) and all(all(b.values()) for b in before), True,
                note=Msg("{n} status read(s) after both interfaces answered, before the cut", n=len(before)))
    down_at = next((s.t for s, b in shown if o.t_cut < s.t <= o.t_restore and not b["main"]), None)
    limit = down_after + 2 * CADENCE_S + dut.timing.request_timeout_s
    if down_at is None:
        check.measure(Msg("main shown down after the cut"), Msg("never"), passed=False, limit=Msg("≤ {limit:g} s",
                                                                                                  limit=limit),
                      note=Msg("status read {sum} times during the cut",
                               sum=sum(1 for s, _ in shown if o.t_cut < s.t <= o.t_restore)))
    else:
        check.within(Msg("main shown down after the cut"), round(down_at - o.t_cut, 3), 0.0, limit, unit="s",
                     note=Msg("declared down_after_s {down_after:g} + two read cadences + a request timeout",
                              down_after=down_after))
    during = [b for s, b in shown if o.t_cut < s.t <= o.t_restore]
    check.equal(Msg("reserve shown up during the cut"), all(b["reserve"] for b in during) and bool(during), True)
    up_at = next((s.t for s, b in shown if s.t > o.t_restore and b["main"]), None)
    if up_at is None:
        check.measure(Msg("main shown up after the restore"), Msg("never"), passed=False,
                      limit=Msg("≤ {patience:g} s", patience=patience(down_after)))
    else:
        check.at_most(Msg("main shown up after the restore"), round(up_at - o.t_restore, 3), patience(down_after),
                      unit="s")
    times = [s.t for s, _ in shown]
    check.chart(Msg("Link status around the cut of the main interface"),
                {name: [(s.t - o.t_cut, float(b[name])) for s, b in shown] for name in ("main", "reserve")},
                x_label=Msg("s since the cut"), y_label=Msg("up (1) / down (0)"), kind="step",
                events=[(0.0, "main cut"), (o.t_restore - o.t_cut, "main restored")] if times else None)
    check.require()


@pytest.mark.check("KZ-84-04", "the journal logs the main interface going down during the outage and coming "
                   "back after it")
def test_channel_events_logged(dut, check):
    o = outage_for(dut, check.id)
    journal = dut.profile.modbus.journal if dut.profile.modbus else None
    kinds = (EventKind.CHANNEL_DOWN, EventKind.CHANNEL_UP)
    missing = [k for k in kinds if journal is None or journal.code_of(k) is None]
    if missing:
        check.measure(Msg("journal codes for channel_down / channel_up"),
                      Msg("missing {kinds}", kinds=", ".join(missing)), passed=False,
                      limit=Msg("both declared"), note=Msg("the device does not log interface outages (cl. 84)"))
        check.require()
    if o.journal_after is None or o.journal_before is None:
        check.measure(Msg("journal readable around the outage"), False, passed=False, limit=Msg("= True"),
                      note=o.journal_error or "")
        check.require()
    if o.clock_offset_s is None:
        raise Inconclusive(Msg("the device clock cannot be read, so journal stamps cannot be placed in the outage"))
    new = new_entries(o.journal_before, o.journal_after)
    subject = o.interfaces.main.journal_subject
    tol = EVENT_TIMESTAMP.limit(check, journal.timestamp_tolerance_s)

    def harness_time(when: datetime) -> float:
        return when.timestamp() - o.clock_offset_s

    def first(kind: EventKind) -> float | None:
        hits = [e for e in new if e.kind == kind and (subject is None or e.details.get("subject") == subject)]
        return harness_time(hits[0].timestamp) - o.t_cut if hits else None

    down, up = first(EventKind.CHANNEL_DOWN), first(EventKind.CHANNEL_UP)
    restore, back = o.t_restore - o.t_cut, (o.t_main_back or o.t_restore) - o.t_cut
    note = f"seconds after the cut; stamps to {STAMP_RESOLUTION_S:g} s, ± the journal's declared tolerance"
    if down is None:
        check.measure(Msg("channel_down of main logged"), Msg("no entry"), passed=False, limit=Msg("during the outage"),
                      note=Msg("{n} new entries", n=len(new)))
    else:
        check.within(Msg("channel_down of main, stamped"), round(down, 3), -STAMP_RESOLUTION_S - tol, restore + tol,
                     unit="s", note=note)
    if up is None:
        check.measure(Msg("channel_up of main logged"), Msg("no entry"), passed=False, limit=Msg("after the restore"),
                      note=Msg("{n} new entries", n=len(new)))
    else:
        check.within(Msg("channel_up of main, stamped"), round(up, 3), restore - STAMP_RESOLUTION_S - tol, back + tol,
                     unit="s", note=note)
    check.require()
