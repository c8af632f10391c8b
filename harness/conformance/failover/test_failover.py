"""cl. 85 main and reserve channels with automatic switchover, cl. 84 link-quality monitoring and
automatic recovery, cl. 71 redundant channels on high-criticality sites — for a DUT that switches
itself (a data concentrator pushing upstream). The main channel's link is cut, flapped and made
lossy through the harness's link-fault proxy; the harness, as head-end on both brokers, times
when records move to the reserve and back against the profile's declared times."""

from __future__ import annotations

import time

import pytest

from harness.conformance.cleanup import restoring
from harness.conformance.uplink import (
    CADENCE_S,
    baseline,
    capture_period,
    ensure_flowing,
    nothing_lost_since,
    on,
    patience,
    pump_until,
    settle,
    uplink_of,
)
from harness.reporting.texts import Msg

pytestmark = pytest.mark.dut_kind("data_concentrator")


def _switch_to_reserve(dut, check, uplink, link) -> float | None:
    """Cut main; seconds until the first record on the reserve (None: never, within 3× the declared time)."""
    headend = dut.upstream.headend
    mark = headend.mark()
    link.cut()
    t_cut = link.last_transition
    first = pump_until(dut, on("reserve"), patience(uplink.switchover_s), after=mark)
    return None if first is None else first.t - t_cut


def _measure_switch(check, name: str, seconds: float | None, declared: float) -> None:
    limit = declared + CADENCE_S
    if seconds is None:
        check.measure(name, Msg("never"), passed=False, limit=Msg("≤ {limit:g} s", limit=limit),
                      note=Msg("no record arrived within {patience:g} s", patience=patience(declared)))
    else:
        check.at_most(name, round(seconds, 3), limit, unit="s",
                      note=Msg("declared {declared:g} s + the harness's pumping cadence {cadence_s:g} s",
                               declared=declared, cadence_s=CADENCE_S))


@pytest.mark.check("KZ-85-01", "when the main channel is cut, interval records flow on the reserve within the "
                   "declared switchover time")
def test_switchover_to_reserve(dut, check):
    uplink = uplink_of(dut)
    link = dut.upstream.link("main")
    ensure_flowing(dut, uplink, "main")
    with restoring(link.restore):
        seconds = _switch_to_reserve(dut, check, uplink, link)
    _measure_switch(check, "switchover main → reserve", seconds, uplink.switchover_s)
    check.require()
    settle(dut, uplink, "main")


@pytest.mark.check("KZ-85-02", "when the main channel returns, records flow on the main channel again within "
                   "the declared return time")
def test_return_to_main(dut, check):
    uplink = uplink_of(dut)
    link = dut.upstream.link("main")
    headend = dut.upstream.headend
    ensure_flowing(dut, uplink, "main")
    with restoring(link.restore):
        if _switch_to_reserve(dut, check, uplink, link) is None:
            check.measure(Msg("on the reserve before main returns"), False, passed=False, limit=Msg("= True"),
                          note=Msg("the DUT never switched, so its return cannot be timed"))
            check.require()
        mark = headend.mark()
        link.restore()
        t_restore = link.last_transition
        back = pump_until(dut, on("main"), patience(uplink.return_s), after=mark)
    _measure_switch(check, "return reserve → main", None if back is None else back.t - t_restore, uplink.return_s)
    check.require()


@pytest.mark.check("KZ-84-01", "a flapping main link and 30 % segment loss neither crash the DUT nor stop its "
                   "data: it recovers automatically, and nothing is lost")
def test_flapping_and_lossy_link(dut, check):
    uplink = uplink_of(dut)
    link = dut.upstream.link("main")
    headend = dut.upstream.headend
    base = baseline(dut, uplink)
    connections_before = link.stats["accepted"]
    flap = max(0.5, uplink.switchover_s / 5)  # faster than the DUT is meant to switch: it must ride it out
    with restoring(link.restore):
        link.flap(up_s=flap, down_s=flap, cycles=3)
        _pump_for(dut, 6 * flap + CADENCE_S)
        link.restore()
        link.drop(30.0)
        _pump_for(dut, uplink.switchover_s)
    recovery_limit = uplink.return_s + uplink.switchover_s
    t0 = time.time()
    back = pump_until(dut, on("main"), patience(recovery_limit), after=headend.mark())
    check.equal(Msg("DUT process alive after the faults"), dut.process.running if dut.process else True, True)
    dut.device.probe()  # still answers on its own interface (a DeviceError is a FAIL)
    check.measure(Msg("DUT answers its interface after the faults"), True, passed=True)
    if back is None:
        check.measure(Msg("recovery on the main channel"), Msg("never"), passed=False,
                      limit=Msg("≤ {recovery_limit:g} s",
                                                                                       recovery_limit=recovery_limit),
                      note=Msg("nothing on main within {patience:g} s", patience=patience(recovery_limit)))
        check.require()
    check.at_most(Msg("recovery on the main channel after the last fault"), round(back.t - t0, 3),
                  recovery_limit + CADENCE_S, unit="s", note=Msg("declared return + switchover time"))
    settle(dut, uplink, "main")
    # Each connection the DUT had to make again means one link failure it lived through: one record
    # may have been in flight on each, and may arrive twice.
    failures = max(0, link.stats["accepted"] - connections_before)
    nothing_lost_since(check, dut, base, allowed_duplicates=failures, label="whole episode")
    check.require()


def _pump_for(dut, seconds: float) -> None:
    period = capture_period(dut)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        dut.time.elapse(period)
        time.sleep(CADENCE_S)


@pytest.mark.check("KZ-84-02", "link status is reported: the DUT's status shows the main channel down during "
                   "the outage and up again after it")
def test_link_status_reflects_the_outage(dut, check):
    uplink = uplink_of(dut)
    link = dut.upstream.link("main")
    headend = dut.upstream.headend
    ensure_flowing(dut, uplink, "main")
    limit_down = uplink.switchover_s + uplink.status_interval_s + CADENCE_S
    with restoring(link.restore):
        mark = headend.mark()
        link.cut()
        t_cut = link.last_transition
        down = pump_until(dut, lambda m: m.kind == "status" and _main_up(m) is False, patience(limit_down),
                          after=mark)
        if down is None:
            check.measure(Msg("status shows main down"), Msg("never"), passed=False, limit=Msg("≤ {limit_down:g} s",
                                                                                     limit_down=limit_down))
        else:
            check.at_most(Msg("status shows main down after the cut"), round(down.t - t_cut, 3), limit_down, unit="s",
                          note=Msg("on the {channel} broker; active {get!r}", channel=down.channel,
                                   get=down.payload.get('active')))
        mark = headend.mark()
        link.restore()
        t_up = link.last_transition
    limit_up = uplink.return_s + uplink.status_interval_s + CADENCE_S
    up = pump_until(dut, lambda m: m.kind == "status" and _main_up(m) is True and m.payload.get("active") == "main",
                    patience(limit_up), after=mark)
    if up is None:
        check.measure(Msg("status shows main up and active again"), Msg("never"), passed=False,
                      limit=Msg("≤ {limit_up:g} s",
                                                                                                limit_up=limit_up))
    else:
        check.at_most(Msg("status shows main up and active again"), round(up.t - t_up, 3), limit_up, unit="s")
    check.require()


def _main_up(m) -> bool | None:
    try:
        return bool(m.payload["channels"]["main"]["up"])
    except (KeyError, TypeError):
        return None


@pytest.mark.check("KZ-71-01", "across a switchover to the reserve and back, no interval record is lost or "
                   "duplicated (beyond one in-flight record per link failure)")
def test_no_interval_lost_across_failover(dut, check):
    uplink = uplink_of(dut)
    link = dut.upstream.link("main")
    base = baseline(dut, uplink)
    with restoring(link.restore):
        t_cut = time.time()
        switched = _switch_to_reserve(dut, check, uplink, link)
        link.restore()
        t_restore = link.last_transition
    settle(dut, uplink, "main")
    recs = nothing_lost_since(check, dut, base, allowed_duplicates=1, label="cut and return")
    check.measure(Msg("records on the reserve during the outage"), sum(1 for r in recs if r.channel == "reserve"),
                  passed=switched is not None, limit=Msg("≥ 1"))
    t0 = recs[0].t if recs else t_cut
    check.chart(Msg("Failover timeline: which channel carried each interval record"), {
        "main": [(r.t - t0, r.seq) for r in recs if r.channel == "main"],
        "reserve": [(r.t - t0, r.seq) for r in recs if r.channel == "reserve"],
    }, kind="scatter", x_label=Msg("wall time, s"), y_label=Msg("interval seq"),
        events=[(t_cut - t0, "main cut"), (t_restore - t0, "main restored")])
    check.require()
