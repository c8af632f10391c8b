"""The date-and-time checks every metering clause asks for (cl. 95 electricity, cl. 96 heat …).

The Rules word the clock requirement the same for each kind of meter ("non-volatile memory holding
main parameters with date and time"), so the checks are one body here and each clause's suite
gives them its own stable ids (KZ-95-09…11, KZ-96-07…09). The clock is readable and settable,
keeps running through a power cut, and its drift against the harness's clock is measured (from
two time fixes, NTP-style) and judged against the accuracy the profile declares — never looser than the
bound of ``conformance/bounds.py`` (IEC 62054-21's 0.5 s/day). A clock the harness cannot set is judged by
its offset to the bench's UTC; the power cut lasts long enough that a clock which stops while unpowered is
out by more than twice the clock tolerance.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.conformance.bounds import CLOCK_DRIFT, clock_cut_off_time
from harness.conformance.power import power_switch
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

FIX_SAMPLES = 100  # reads averaged per time fix when the clock shows sub-second resolution
EDGE_TIMEOUT_S = 2.5  # a seconds-resolution clock must tick within this while we watch it
EDGES = 3  # ticks watched at most per time fix of a seconds-resolution clock …
GOOD_EDGE_S = 0.002  # … stopping at the first bracketed within ±2 ms (a quiet loopback exchange is ~1 ms)
DRIFT_FAST_FORWARD_S = 86400.0  # a DUT with time control lets a whole day pass between the two time fixes
CLOCK_STEP_S = 0.01  # the harness's clock and its monotonic clock may part by this much before it "stepped"


@dataclass(frozen=True)
class TimeFix:
    """Device clock minus harness clock at one moment, in seconds, with its uncertainty."""

    offset: float
    uncertainty: float
    at: float  # harness wall time of the fix


def _clock_declared(dut: Any, clause: str) -> None:
    if dut.profile.clock is None or not dut.profile.maps_clock:
        raise Inconclusive(Msg("the profile declares no device clock; cl. {clause} requires date and time",
                               clause=clause))


def time_fix(device: Any) -> TimeFix:
    """Where the device clock stands against ours, as precisely as its resolution allows."""
    first = device.read_clock()
    if first.resolution_s < 0.5:
        samples = []
        for _ in range(FIX_SAMPLES):
            r = device.read_clock()
            mid = (r.t_sent + r.t_received) / 2
            # a truncating clock shows on average half a step less than the true time
            samples.append((r.t_received - r.t_sent, r.value.timestamp() + r.resolution_s / 2 - mid, mid))
        # NTP-style: the quickest exchanges say most about when the device read its clock.
        kept = sorted(samples)[: len(samples) // 2]
        offsets = [s[1] for s in kept]
        se = statistics.stdev(offsets) / math.sqrt(len(offsets))
        half_rtt = statistics.median(s[0] for s in kept) / 2
        return TimeFix(statistics.fmean(offsets), 2 * se + half_rtt, statistics.fmean(s[2] for s in kept))
    # Seconds only: watch for the tick; the new second began between the two reads around it. A busy
    # harness host can widen one bracket, so watch up to EDGES ticks and keep the tightest.
    best: TimeFix | None = None
    prev = first
    for _ in range(EDGES):
        deadline = time.monotonic() + EDGE_TIMEOUT_S
        while time.monotonic() < deadline:
            cur = device.read_clock()
            if cur.value != prev.value:
                edge = (prev.t_sent + cur.t_received) / 2
                fix = TimeFix(cur.value.timestamp() - edge, (cur.t_received - prev.t_sent) / 2, edge)
                best = fix if best is None or fix.uncertainty < best.uncertainty else best
                prev = cur
                break
            prev = cur
        else:
            break
        if best.uncertainty <= GOOD_EDGE_S:
            return best
    if best is None:
        raise Inconclusive(Msg("the device clock did not tick within {edge_timeout_s} s of watching",
                               edge_timeout_s=EDGE_TIMEOUT_S))
    return best


def clock_readable_and_settable(dut: Any, check: Any, clause: str) -> None:
    """The date and time are readable, and a time set over the interface reads back."""
    _clock_declared(dut, clause)
    device, tol = dut.device, dut.timing.clock_tolerance_s
    reading = device.read_clock()
    check.measure(Msg("clock read"), reading.value.isoformat(), passed=True, note=Msg("decodes to a valid date-time"))
    if not dut.profile.clock.writable:
        # Synchronisation is then the operator's, but the clock still stamps everything the meter keeps:
        # it must show the bench's UTC (the harness's clock, moved on by any device time a simulator was
        # fast-forwarded) within the same tolerance a set clock is held to.
        fix = time_fix(device)
        offset = fix.offset - dut.time.world_offset_s()
        check.within(Msg("offset to UTC (clock declared not settable)"), offset, -tol - fix.uncertainty,
                     tol + fix.uncertainty, unit="s",
                     note=Msg("timing.clock_tolerance_s ± the time fix's uncertainty {uncertainty:.3f} s",
                              uncertainty=fix.uncertainty))
        check.require()
        return
    # Set a time far from the present first: a clock that ignores writes cannot pass by luck.
    for label, shift in ((Msg("set to UTC+3 h 7 min"), timedelta(hours=3, minutes=7)),
                         (Msg("set back to UTC"), timedelta())):
        target = datetime.now(UTC) + shift
        device.set_clock(target)
        fix = time_fix(device)
        check.within(Msg("{label}: error after set",
                         label=label), fix.offset - shift.total_seconds(), -tol, tol, unit="s")
    check.require()


def clock_continues_after_power_cut(dut: Any, check: Any, clause: str) -> None:
    """After a power cut the clock continues from where it was (not reset, not stopped)."""
    _clock_declared(dut, clause)
    power = power_switch(dut)
    if dut.profile.clock.writable:
        dut.device.set_clock(datetime.now(UTC))
    tol = dut.timing.clock_tolerance_s
    off_s = clock_cut_off_time(dut.spec.power.off_time_s, tol)
    if off_s > dut.timing.max_wall_wait_s:
        raise Inconclusive(Msg("a cut long enough to show a stopped clock ({off_s:g} s, > 2 × "
                               "timing.clock_tolerance_s {tol:g} s) exceeds timing.max_wall_wait_s "
                               "{max_wall_wait_s:g} s: lower the tolerance or allow the wait", off_s=off_s, tol=tol,
                               max_wall_wait_s=dut.timing.max_wall_wait_s))
    before = time_fix(dut.device)
    _t_off, _t_on, ready = power.cut(off_s)
    after = time_fix(dut.device)
    check.within(Msg("clock error across the cut"), after.offset - before.offset, -tol, tol, unit="s",
                 note=Msg("power off {off_s:g} s (> 2 × the tolerance: a clock that stops while unpowered is "
                          "outside it), answered {ready:.2f} s after power-on", off_s=off_s, ready=ready))
    check.require()


def clock_drift_within_declared(dut: Any, check: Any, clause: str) -> None:
    """Clock drift against the harness's clock is within the declared accuracy (never looser than the bound).

    A DUT with time control (a simulator) lets a day of device time pass between the two time fixes, so the
    drift is resolved to a small fraction of a ppm; on a real device the rig's ``clock_drift_window_s`` of
    wall time passes. Any device time the harness fast-forwarded is taken out of the offset change.
    """
    _clock_declared(dut, clause)
    limit_s_day = CLOCK_DRIFT.limit(check, dut.profile.clock.max_drift_s_per_day)
    limit_ppm = limit_s_day / 86400 * 1e6
    forward = DRIFT_FAST_FORWARD_S if dut.time.fast else 0.0
    m0 = time.monotonic()
    start = time_fix(dut.device)
    m1 = time.monotonic()
    if forward:
        dut.time.elapse(forward)
    else:
        time.sleep(dut.timing.clock_drift_window_s)
    m2 = time.monotonic()
    end = time_fix(dut.device)
    m3 = time.monotonic()
    wall = end.at - start.at
    # Between the two fixes the monotonic clock moved by something in [m2 - m1, m3 - m0]; the harness's
    # wall clock must agree, or it was stepped (and every offset after the step is off by the step).
    stepped = max(0.0, wall - (m3 - m0)) + min(0.0, wall - (m2 - m1))
    if wall <= 0 or abs(stepped) > CLOCK_STEP_S:
        raise Inconclusive(Msg("the harness's own clock stepped ({stepped:+.3f} s against its monotonic clock) "
                               "during the measurement, so the device's drift cannot be told from it; run the "
                               "bench with a clock that is slewed, not stepped (chrony/ntpd), and repeat",
                               stepped=stepped))
    span = wall + forward
    drift = (end.offset - start.offset - forward) / span * 1e6
    uncertainty = (start.uncertainty + end.uncertainty) / span * 1e6
    over = Msg("over {span:.1f} s ({forward:g} s of it fast-forwarded)", span=span, forward=forward) if forward \
        else Msg("over {span:.1f} s", span=span)
    note = Msg("{over}, ±{uncertainty:.3f} ppm; {per_day:+.3f} s/day", over=over, uncertainty=uncertainty,
               per_day=drift * 86400 / 1e6)
    if abs(drift) - uncertainty > limit_ppm:
        check.at_most(Msg("clock drift"), abs(drift), limit_ppm, unit="ppm", note=note)
    elif abs(drift) + uncertainty <= limit_ppm:
        check.at_most(Msg("clock drift (with uncertainty)"), abs(drift) + uncertainty, limit_ppm, unit="ppm", note=note)
    else:
        # The window that would resolve it: the uncertainty (s / span) must fall below the drift's distance
        # from the limit, on whichever side the drift lies. A drift within 1 % of the limit is not worth a
        # longer window than that distance gives; it never divides by ~0 (a 1e-12 floor once printed ≳ 5e8 s).
        gap_ppm = max(abs(abs(drift) - limit_ppm), 0.01 * limit_ppm)
        needed = (start.uncertainty + end.uncertainty) / (gap_ppm / 1e6)
        raise Inconclusive(Msg("drift {drift:+.1f} ppm ±{uncertainty:.1f} ppm cannot be told from the limit "
                               "{limit_ppm:.1f} ppm; lengthen timing.clock_drift_window_s (≳ {needed:.0f} s)",
                               drift=drift, uncertainty=uncertainty, limit_ppm=limit_ppm, needed=needed))
    check.require()
