"""What the interval-data checks share: the declared load profile, device time, moving device time to a
chosen point relative to the period boundaries, and telling new records from old ones.

Every interval boundary is judged in *device* time (clock reads around each step), never in the
harness's: a meter closes its intervals by its own clock, and no harness/device offset is assumed.
Time passes through ``dut.time`` — fast-forward on a simulator, bounded real waiting on a real
device (INCONCLUSIVE beyond the rig's ``max_wall_wait_s``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.conformance.energy import Snapshot, snapshot
from harness.intervals import IntervalData, IntervalFlag
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

DAY_S = 86400
MAX_PERIOD_S = 900  # cl. 31: data collected at intervals down to 15 minutes
APPROACH_STEPS = 4  # elapse_to: steps to reach a device time (a fast or slow RTC needs a second one)
Key = tuple[float, int | None, int, tuple[tuple[str, float], ...]]


def load_profile_of(dut: Any) -> Any:
    """The profile's load-profile declaration; its absence FAILs (cl. 31 requires interval data)."""
    section = dut.profile.modbus or getattr(dut.profile, "dlms", None)
    lp = getattr(section, "load_profile", None)
    if lp is None:
        raise AssertionError(Msg("profile {model} declares no load profile (modbus.load_profile, dlms.load_profile); "
                                 "cl. 31 requires data collected continuously at intervals down to 15 minutes",
                                 model=dut.profile.model))
    return lp


def need_fast_time(dut: Any, what: str) -> None:
    """Days of device time need a DUT whose time can be fast-forwarded; say so instead of waiting."""
    if not dut.time.fast:
        raise Inconclusive(Msg("{what} needs a DUT whose time can be fast-forwarded (a simulator's control "
                               "channel); a real meter's profile is judged over a day of real time by the lab",
                               what=what))


def device_now(dut: Any) -> datetime:
    """The device clock in UTC; INCONCLUSIVE without one (no boundary can be judged)."""
    if dut.profile.clock is None or not dut.profile.maps_clock:
        raise Inconclusive(Msg("the profile declares no device clock, so interval boundaries cannot be judged"))
    return dut.device.read_clock().value.astimezone(UTC)


def boundary_after(t: datetime, period_s: int) -> datetime:
    """The first period boundary (a multiple of the period in UTC) strictly after ``t``."""
    return datetime.fromtimestamp((math.floor(t.timestamp() / period_s) + 1) * period_s, UTC)


def elapse_to(dut: Any, target: datetime) -> datetime:
    """Let device time pass until the device clock shows ``target`` (never past it by more than a
    step's rounding): approached in steps, because a device's RTC need not run at the harness's rate."""
    now = device_now(dut)
    for _ in range(APPROACH_STEPS):
        left = (target - now).total_seconds()
        if left <= 0.001:
            break
        dut.time.elapse(left if left < 60 else left * 0.99)
        now = device_now(dut)
    return now


def key(r: IntervalData) -> Key:
    """What makes a record the same record when read again."""
    return (r.end.timestamp(), r.sequence, r.status, tuple(sorted((str(c), v) for c, v in r.increments.items())))


def new_records(before: Iterable[IntervalData], after: Sequence[IntervalData]) -> list[IntervalData]:
    """Records in ``after`` that ``before`` did not hold (a ring may have dropped old ones meanwhile)."""
    seen = {key(r) for r in before}
    return [r for r in after if key(r) not in seen]


def record_ending(records: Sequence[IntervalData], end: datetime) -> IntervalData | None:
    """The newest record held for the interval ending at ``end``."""
    return next((r for r in reversed(records) if r.end == end), None)


def flags_text(r: IntervalData | None) -> str:
    if r is None:
        return Msg("no record")
    return ", ".join(sorted(f.value for f in r.flags)) or Msg("no flags")


def bracket(dut: Any, names: list[str], boundary: datetime, margin_s: float) -> tuple[Snapshot, Snapshot]:
    """Registers read just before and just after ``boundary`` in device time, so the value the device
    booked at the boundary lies between the two (counters only rise). INCONCLUSIVE when the clock reads
    show the two reads do not straddle it."""
    elapse_to(dut, boundary - timedelta(seconds=margin_s))
    before = snapshot(dut, names)
    c_before = dut.device.read_clock()
    dut.time.elapse(2 * margin_s)
    c_after = dut.device.read_clock()
    after = snapshot(dut, names)
    if not c_before.value + timedelta(seconds=c_before.resolution_s) <= boundary <= c_after.value:
        raise Inconclusive(Msg("could not read the registers on both sides of the boundary {isoformat}: device "
                               "clock {isoformat2} before, {isoformat3} after", isoformat=boundary.isoformat(),
                               isoformat2=c_before.value.isoformat(), isoformat3=c_after.value.isoformat()))
    return before, after


def flagged(records: Iterable[IntervalData], flag: IntervalFlag) -> list[IntervalData]:
    return [r for r in records if flag in r.flags]
