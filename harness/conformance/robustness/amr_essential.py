"""The essential function of an AMR server under attack: an authenticated read of its meter list through the AMR
driver (the lab's administrator account of the rig), and afterwards nothing lost — every meter it listed and
every reading it had stored before the campaign is still there.

One session is logged in for the whole check (a login per monitor read would itself be load, and is audited
by the server); a token the server forgot (it restarted) is met by one new login, since what the monitor
judges is whether the server keeps serving, and a lost reading is judged separately below.
"""

from __future__ import annotations

import time
from typing import Any

from harness.config.amr import AmrOperation
from harness.devices.amr.api import AmrAccessDenied, AmrSession
from harness.devices.api import DeviceError
from harness.reporting.outcome import exc_text
from harness.reporting.texts import Msg

POLL_S = 0.1
ESSENTIAL = "meters"  # the monitor's one "quantity": the meter list
_sessions: dict[int, AmrSession] = {}


def is_amr(dut: Any) -> bool:
    return getattr(dut.profile, "amr", None) is not None


def _session(dut: Any, fresh: bool = False) -> AmrSession:
    from harness.conformance.amr.field_truth import admin

    key = id(dut)
    if fresh or key not in _sessions:
        _sessions[key] = admin(dut)
    return _sessions[key]


def read_meters(dut: Any) -> dict[str, Any]:
    """The meter list as {meter id: active}; ``DeviceError`` when the server does not serve it."""
    try:
        meters = _session(dut).meters()
    except AmrAccessDenied as exc:
        if exc.status != 401:
            raise
        meters = _session(dut, fresh=True).meters()
    return {m.meter_id: m.active for m in meters}


def stored(dut: Any, meters: list[str]) -> dict[str, set[str]]:
    """Every stored reading's id, per meter."""
    session = _session(dut)
    return {m: {r.reading_id for r in session.readings(m)} for m in meters}


def with_a_reading(dut: Any, meters: list[str]) -> dict[str, set[str]]:
    """The stored readings before a campaign; a server that holds none yet (it was just started and has not
    polled) is asked for one manual reading (the server's documented function, where the profile gives its
    administrator ``manual_read``), awaited for the declared ``manual_read_s``: "nothing lost" should have
    something to judge."""
    held = stored(dut, meters)
    spec = dut.profile.amr
    if any(held.values()) or not meters or not spec.may(spec.admin_role, AmrOperation.MANUAL_READ):
        return held
    _session(dut).request_reading(meters[0])
    deadline = time.monotonic() + spec.timings.manual_read_s
    while time.monotonic() < deadline:
        time.sleep(POLL_S)
        held = stored(dut, meters)
        if any(held.values()):
            break
    return held


def nothing_lost(check: Any, dut: Any, before_meters: dict[str, Any], before: dict[str, set[str]],
                 after_meters: dict[str, Any]) -> None:
    gone = sorted(set(before_meters) - set(after_meters))
    check.equal(Msg("meters listed before the campaign missing afterwards"), len(gone), 0,
                note=", ".join(gone[:10]) if gone else Msg("{n} meters checked", n=len(before_meters)))
    try:
        now = stored(dut, [m for m in before if m in after_meters])
    except DeviceError as exc:  # judged, not raised: the reproducer is kept for a failure like any other
        check.equal(Msg("stored readings read after the campaign"), exc_text(exc), Msg("answered"))
        return
    lost = sorted(f"{m}:{r}" for m, ids in before.items() for r in ids - now.get(m, set()))
    check.equal(Msg("readings stored before the campaign missing afterwards"), len(lost), 0,
                note=", ".join(lost[:10]) if lost else
                Msg("{n} readings checked", n=sum(len(ids) for ids in before.values())))


def forget(dut: Any) -> None:
    session = _sessions.pop(id(dut), None)
    if session is not None:
        session.close()
