"""cl. 49 communication robustness, IEC 62443-3-3 SR 3.5 (input validation) and SR 7.1 (denial-of-service
protection), in the manner of ISASecure's CRT: malformed and fuzzed frames, a storm of valid requests, a
storm of connections past the declared limit, half-open connections — each while the essential function is
monitored, each bounded by the rig's ``robustness`` settings and seeded by its ``seed``, and each followed
by "fully functional, nothing lost". Destructive: only on rigs that allow it, and only against loopback,
the harness's own namespaces, the rig's ``lab_allow_list`` or a serial line of the rig (Modbus RTU: fuzzing
and the storm on the line, the essential function read between frames; connections are a TCP notion)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from harness.conformance.robustness.attack import SR, Finding, under_attack
from harness.conformance.robustness.essential import essential_quantities
from harness.conformance.wire.campaign import MISSES_BEFORE_GIVING_UP
from harness.conformance.wire.modbus_targets import response_time_s
from harness.devices.api import DeviceError
from harness.reporting.texts import Msg
from harness.verdicts import NotApplicable

pytestmark = pytest.mark.destructive
HELD_BY_HARNESS = 1  # the monitor's own connection to the DUT counts against its connection limit
TRIES_AFTER = 3  # new connections that must be served, one after the other, once an attack is over


@pytest.fixture
def rig(harness_run):
    return harness_run.loaded.rig


def _limit(dut) -> int | None:
    """The profile's declared connection limit (``modbus.max_connections`` / ``opcua.max_connections`` /
    ``amr.max_connections``)."""
    declared = dut.profile.modbus or dut.profile.opcua or getattr(dut.profile, "amr", None)
    return getattr(declared, "max_connections", None)


def _connections_only(dut, what: Msg) -> None:
    """Connection storms and half-open connections are TCP notions: a serial line has no connections."""
    if dut.spec.transport.tcp is None:
        raise NotApplicable(Msg("the DUT is reached over a serial line (RTU): there are no connections to {what}",
                                what=what))


@pytest.mark.check("KZ-49-01", Msg("malformed and fuzzed frames (scapy; {items}): the essential function "
                                   "continues within the declared response time, and afterwards nothing is lost",
                                   items=', '.join(SR)))
def test_malformed_and_fuzzed_frames(dut, check, rig):
    settings = rig.robustness

    def attack(campaign, monitor, target, coverage):
        def suspected(refused, sent, settled: bool = True) -> Finding:
            bad = monitor.first_bad(response_time_s(dut))
            if refused is None and bad is None:
                return Finding(meta={"cases_sent": len(sent)},
                               settle=None if settled else lambda: suspected(refused, sent))
            # The cases under suspicion: sent after the last read that was answered in time (less one monitor
            # interval), and — when a read failed or came late — before that read was over (a server that only
            # slows down, like one that dies, does so on a case it had received by then).
            since = (monitor.last_timely(response_time_s(dut)) or 0.0) - settings.monitor_interval_s
            until = bad.t + bad.latency_s if bad is not None and refused is None else float("inf")
            suspects = [o for o in sent if since <= o.t_sent <= until]
            return Finding({o.conn for o in suspects}, [o.case for o in suspects],
                           {"cases_sent": len(sent), "suspect_cases": [o.case.index for o in suspects]})

        cases = target.cases(rig.seed, settings.fuzz_cases)
        outcomes = campaign.fuzz(cases, lambda: monitor.down, response_time_s(dut))
        sent = [o for o in outcomes if o.refused is None]
        coverage.record(check, Msg("fuzz cases"), len(cases), len(sent), campaign)
        check.measure(Msg("fuzz cases sent"), len(sent), passed=True,
                      note=Msg("of {n} planned, seed {seed}, in {elapsed_s:.2f} s ({value:.0f} cases/s); {sum} "
                               "answered, {sum2} closed by the DUT", n=len(cases), seed=rig.seed,
                               elapsed_s=campaign.elapsed_s, value=len(sent) / max(campaign.elapsed_s, 1e-9),
                               sum=sum(1 for o in sent if o.reply), sum2=sum(1 for o in sent if o.closed)))
        refused = next((o for o in outcomes if o.refused is not None), None)
        if target.serial_port is None:
            check.measure(Msg("connections taken throughout the campaign"),
                          Msg("refused before case {index} ({refused})", index=refused.case.index,
                              refused=refused.refused) if refused else Msg("all"),
                          passed=refused is None)
        return suspected(refused, sent, settled=False)

    under_attack(dut, check, rig, attack)


@pytest.mark.check("KZ-49-02", Msg("a storm of valid requests ({items}): the essential function continues within "
                                   "the declared response time during and after it, nothing lost", items=', '.join(SR)))
def test_request_storm(dut, check, rig):
    settings = rig.robustness

    def attack(campaign, monitor, target, coverage):
        if target.request is None:
            return _storm_through_device(dut, check, campaign, monitor, coverage)
        flood = campaign.flood(target.request, target.valid, settings.flood_requests, settings.flood_connections,
                               response_time_s(dut), lambda: monitor.down)
        coverage.record(check, Msg("storm requests"), settings.flood_requests, flood.sent, campaign,
                        note=Msg("{gave_up} connection(s) given up by the harness after {misses} unanswered requests",
                                 gave_up=flood.gave_up, misses=MISSES_BEFORE_GIVING_UP) if flood.gave_up else "")
        where = Msg("over {flood_connections} connections",
                    flood_connections=settings.flood_connections) if target.serial_port is None \
            else Msg("back to back on the line (one exchange at a time)")
        check.measure(Msg("requests sent in the storm"), flood.sent, passed=True,
                      note=Msg("{answered} answered, {where} in {elapsed_s:.2f} s ({value:.0f} requests/s); a "
                               "device may shed such load, it must not lose its essential function",
                               answered=flood.answered, where=where, elapsed_s=flood.elapsed_s,
                               value=flood.sent / max(flood.elapsed_s, 1e-9)))
        return Finding(meta={"requests": flood.sent, "answered": flood.answered})

    under_attack(dut, check, rig, attack)


def _storm_through_device(dut, check, campaign, monitor, coverage) -> Finding:
    """A protocol without a repeatable raw request (OPC UA): the storm is reads through the Device API's own
    session, from ``flood_connections`` threads, bounded like every campaign. It stops at its first read that
    fails after the driver's retries: the device no longer keeps up, the monitor judges its essential function,
    and storming on would only queue the driver's reconnect bounds one behind the other."""
    settings = campaign.settings
    quantity = essential_quantities(dut)[0]
    numbers, lock, counts = itertools.count(), threading.Lock(), {"sent": 0, "answered": 0}
    failed = threading.Event()

    def worker() -> None:
        while not monitor.down and not failed.is_set() and campaign.pacer.wait() \
                and next(numbers) < settings.flood_requests:
            try:
                dut.device.read(quantity)
                ok = 1
            except DeviceError:
                ok = 0
                failed.set()
            with lock:
                counts["sent"] += 1
                counts["answered"] += ok

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(settings.flood_connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=settings.max_duration_s + dut.timing.request_timeout_s * 3 + 1)
    took = time.perf_counter() - t0
    check.measure(Msg("requests sent in the storm (reads on the Device API's session)"), counts["sent"], passed=True,
                  note=Msg("{answered} answered in {took:.2f} s", answered=counts['answered'], took=took))
    coverage.record(check, Msg("storm reads"), settings.flood_requests, counts["sent"], campaign)
    return Finding(meta=dict(counts))


@pytest.mark.check("KZ-49-03", Msg("a storm of connections up to and past the declared limit ({items}): "
                                   "connections within the limit are served, the essential function continues, and "
                                   "every connection closed is freed — new ones are served afterwards",
                                   items=', '.join(SR)))
def test_connection_storm(dut, check, rig):
    _connections_only(dut, Msg("storm"))
    settings = rig.robustness
    limit = _limit(dut)
    count = limit + settings.past_limit if limit else settings.connections

    def attack(campaign, monitor, target, coverage):
        wait = response_time_s(dut)
        storm = campaign.storm(count, target.probe, target.valid, wait)
        coverage.record(check, Msg("storm connections"), count, storm.served + storm.refused + storm.unanswered,
                        campaign)
        note = Msg("{refused} refused or closed, {unanswered} unanswered", refused=storm.refused,
                   unanswered=storm.unanswered)
        if limit:
            check.at_least(Msg("of {count} connections (declared limit {limit}, {held_by_harness} held by the "
                               "harness's monitor), served", count=count, limit=limit,
                               held_by_harness=HELD_BY_HARNESS), storm.served, min(count,
                                                                                   limit - HELD_BY_HARNESS), note=note)
        else:
            check.measure(Msg("of {count} connections, served", count=count), storm.served, passed=True,
                          note=Msg("{note}; the profile declares no max_connections", note=note))
        time.sleep(min(settings.hold_s, max(0.0, campaign.deadline - time.perf_counter())))
        campaign.release(storm)
        time.sleep(min(0.2, settings.hold_s))  # the FINs reach the device before the next SYN does
        served = campaign.fresh_connections_served(target.probe, target.valid, TRIES_AFTER, wait)
        check.equal(Msg("new connections served after the storm's were closed"), served, TRIES_AFTER)
        return Finding(meta={"connections": count, "served": storm.served, "served_after": served},
                       serves_no_one_new=served == 0)

    under_attack(dut, check, rig, attack)


@pytest.mark.check("KZ-49-04", Msg("half-open connections — opened and never used, or stalled half-way through a "
                                   "frame ({items}): the essential function continues while they are held, and new "
                                   "connections are served once they are gone", items=', '.join(SR)))
def test_half_open_connections(dut, check, rig):
    _connections_only(dut, Msg("hold half-open"))
    settings = rig.robustness
    limit = _limit(dut)
    count = max(1, limit - HELD_BY_HARNESS) if limit else settings.half_open

    def attack(campaign, monitor, target, coverage):
        wait = response_time_s(dut)
        # Held for at least twice the declared answer time: a device that stops serving while a frame is
        # half-way in shows it only as a missed answer deadline of the monitor.
        hold = max(settings.hold_s, 2 * wait)
        held = campaign.half_open(count, target.probe, wait)
        coverage.record(check, Msg("half-open connections"), count, len(held.sockets) + held.refused, campaign)
        check.measure(Msg("half-open connections held"), len(held.sockets), passed=True,
                      note=Msg("for {hold:g} s, every other one with half a frame; {refused} refused", hold=hold,
                               refused=held.refused))
        time.sleep(min(hold, max(0.0, campaign.deadline - time.perf_counter())))
        campaign.release(held)
        time.sleep(min(0.2, settings.hold_s))
        served = campaign.fresh_connections_served(target.probe, target.valid, TRIES_AFTER, wait)
        check.equal(Msg("new connections served after the half-open ones were closed"), served, TRIES_AFTER)
        return Finding(meta={"half_open": count, "served_after": served}, serves_no_one_new=served == 0)

    under_attack(dut, check, rig, attack)
