"""What the ``amr`` checks share: the server's sessions, the field's ground truth, bounded waits.

The harness never trusts the server about a meter: it reads the field meter itself with its own driver,
before and after the server's reading, and judges the server's value against that bracket within the
register's resolution. Every limit comes from the server's profile (``amr.timings``) or the rig.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.config.amr import AmrOperation, AmrSpec
from harness.devices.amr.api import AmrReading, AmrSession, AmrUser
from harness.quantities import UNIT_FACTORS
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

T = TypeVar("T")
POLL_S = 0.1  # how often a wait asks the server again (wall time)
SAMPLES_PER_INTERVAL = 4  # in simulated time the harness reads each field meter this often per polling interval
FAST_STEPS = 20  # a wait in simulated time looks this many times over its limit (and at each of the server's reads)


def amr_spec(dut: Any) -> AmrSpec:
    spec = getattr(dut.profile, "amr", None)
    if spec is None:
        raise Inconclusive(Msg("{name}: the profile has no `amr:` section", name=dut.name))
    return spec


def require_declared(check: Any, declared: object, what: Msg, limit: Msg) -> None:
    """A capability cl. 62 asks for that the profile does not declare is the check's FAIL (measured as "none"
    against what the Rules ask), not a skip: the server lacks it by its own description."""
    if not declared:
        check.measure(what, Msg("none"), passed=False, limit=limit)
        check.require()


def field_meters(dut: Any) -> dict[str, Any]:
    """The field's meter runtimes, brought up with the server; INCONCLUSIVE without a field."""
    if dut.field is None or not dut.field.meters:
        raise Inconclusive(Msg("{name}: the rig gives the AMR server no `field:` of meters, so nothing the server "
                               "reports can be compared with the truth", name=dut.name))
    return dut.field.meters


def admin(dut: Any) -> AmrSession:
    """A session of the lab's account for the profile's ``admin_role`` (rig ``credentials``)."""
    spec = amr_spec(dut)
    cred = dut.spec.credentials.get(spec.admin_role)
    if cred is None or not cred.user or not cred.password:
        raise Inconclusive(Msg("{name}: the rig gives no credentials.{role} {{user, password}} for the "
                               "server's administrator role", name=dut.name, role=spec.admin_role))
    return dut.device.login(cred.user, cred.password)


@contextlib.contextmanager
def temporary_user(dut: Any, session: AmrSession, role: str, meters: list[str] | None = None,
                   ) -> Iterator[tuple[AmrUser, str]]:
    """A user made for one check and deleted after it (the server is left with the users it had)."""
    user = AmrUser(f"harness-{role}-{secrets.token_hex(3)}", role, meters or [])
    password = secrets.token_urlsafe(12)  # made here, never written to evidence
    session.add_user(user, password)
    try:
        yield user, password
    finally:
        with contextlib.suppress(Exception):  # gone already (the check deleted it) or the server is down
            session.delete_user(user.name)


@contextlib.contextmanager
def role_session(dut: Any, session: AmrSession, role: str) -> Iterator[AmrSession]:
    """A session in ``role``: a temporary user of it (the administrator's own session is never reused, so a
    proposer and a confirmer are two people, as cl. 48 means)."""
    with temporary_user(dut, session, role) as (user, password):
        own = dut.device.login(user.name, password)
        try:
            yield own
        finally:
            own.close()


def correction_roles(spec: AmrSpec) -> tuple[str, str] | None:
    """(the role that proposes corrections, the role that confirms them); None when the profile has not both."""
    proposers = [r for r, ops in spec.roles.items() if AmrOperation.PROPOSE_CORRECTION in ops]
    proposer = next((r for r in proposers if r != spec.confirmer_role), proposers[0] if proposers else None)
    return None if proposer is None or spec.confirmer_role is None else (proposer, spec.confirmer_role)


def may(dut: Any, role: str, operation: AmrOperation) -> bool:
    return amr_spec(dut).may(role, operation)


def wait_for(what: Callable[[], T | None], timeout_s: float, dut: Any = None) -> tuple[T | None, float]:
    """Ask ``what`` until it gives something (not None) or ``timeout_s`` passes: (the answer, seconds it took).
    With ``dut`` the seconds are the DUT's: its ``dut.time`` makes them pass (a simulated server and its field
    advanced together, or wall time on a real server) and ``what`` is asked after each step."""
    if dut is not None:
        return _wait_in_device_time(dut, what, timeout_s)
    t0 = time.monotonic()
    while True:
        got = what()
        took = time.monotonic() - t0
        if got is not None or took >= timeout_s:
            return got, took
        time.sleep(min(POLL_S, max(0.0, timeout_s - took)))


def _wait_in_device_time(dut: Any, what: Callable[[], T | None], timeout_s: float) -> tuple[T | None, float]:
    t0 = dut.time.device_now()
    got = what()
    if got is None:
        for _ in dut.time.steps(timeout_s, step_s(dut, timeout_s)):
            if (got := what()) is not None:
                break
    return got, dut.time.device_now() - t0


def step_s(dut: Any, span_s: float) -> float:
    """How much device time passes between two looks during a wait of ``span_s``: a twentieth of it in simulated
    time (the server's own reads are stops besides), ``POLL_S`` of wall time on a real server."""
    return max(POLL_S, span_s / FAST_STEPS) if dut.time.fast else POLL_S


def observe_change(check: Any, label: Msg, reached: Callable[[], bool], limit_s: float, still: Msg,
                   declared: str = "", detail: Callable[[], str] | None = None, dut: Any = None) -> float:
    """Wait (at most ``limit_s``, in ``dut``'s time when given) until the server shows a change (``reached``), and
    measure how long it took against the declared limit (``detail``: what the server says about it, kept as the
    note); the seconds it took (or waited in vain)."""
    _, took = wait_for(lambda: True if reached() else None, limit_s, dut)
    seen = reached()
    said = detail() if detail is not None and seen else ""  # the server's own words: quoted, never translated
    check.measure(Msg("{label} after", label=label),
                  round(took, 2) if seen else Msg("{still} after {took:.1f} s", still=still, took=took),
                  unit="s" if seen else None, passed=seen and took <= limit_s,
                  limit=Msg("≤ {limit:g} s (declared {declared})", limit=limit_s, declared=declared) if declared
                  else Msg("≤ {limit:g} s", limit=limit_s),
                  note=Msg("the server says: “{detail}”", detail=said) if said else "")
    return took


def bounded_wait(dut: Any, seconds: float, why: Msg) -> float:
    """A wait of ``seconds`` a check needs, refused (INCONCLUSIVE) beyond the rig's ``timing.max_wall_wait_s`` when
    it is real waiting (no simulated time: ``dut.time`` is not fast)."""
    limit = dut.timing.max_wall_wait_s
    if seconds > limit and not getattr(dut.time, "fast", False):
        raise Inconclusive(Msg("{why} needs {seconds:g} s of real waiting, more than timing.max_wall_wait_s "
                               "({limit:g} s); raise it in the rig", why=why, seconds=seconds, limit=limit))
    return seconds


@dataclass(frozen=True)
class Truth:
    """The harness's own read of a field meter: value in canonical units, its resolution, when."""

    value: float
    unit: str
    resolution: float
    t: float  # harness wall time (mid-read), or device time where the sampler says so


def truth(meter: Any, quantity: str, offset_s: float = 0.0) -> Truth:
    """One read of ``quantity``; its ``t`` plus ``offset_s`` (the DUT's ``world_offset_s``: device time)."""
    r = meter.device.read(quantity)
    return Truth(float(r.value), r.unit or "", float(r.resolution or 0.0), (r.t_sent + r.t_received) / 2 + offset_s)


def sample_field(dut: Any, seconds: float, grain_s: float) -> dict[str, list[Truth]]:
    """The harness's own reads of every field meter while ``seconds`` of the DUT's time pass (``dut.time``: the
    server and its field together in simulated time, wall time on a real server): one at the start and one after
    every step of at most ``grain_s`` (and at each of a simulated server's reads), each ``t`` in device time. The
    meters are read side by side, each its own device."""
    meters = field_meters(dut)
    quantity = {name: dut.field.quantity(name) for name in meters}
    samples: dict[str, list[Truth]] = {name: [] for name in meters}
    with ThreadPoolExecutor(max_workers=len(meters)) as pool:
        def take() -> None:
            offset = dut.time.world_offset_s()
            reads = {name: pool.submit(truth, meter, quantity[name], offset) for name, meter in meters.items()}
            for name, read in reads.items():
                samples[name].append(read.result())
        take()
        for _ in dut.time.steps(seconds, grain_s):
            take()
    return samples


def canonical(reading: AmrReading) -> tuple[float, str] | None:
    """The server's value in the canonical unit of its dimension; None for a unit the harness does not know."""
    known = UNIT_FACTORS.get(reading.unit)
    if known is None:
        return None
    unit, factor = known
    return reading.value * factor, unit


def within_bracket(reading: AmrReading, before: Truth, after: Truth) -> tuple[bool, Msg]:
    """Is the server's reading a value the meter showed between the harness's two reads (± one register step)?"""
    got = canonical(reading)
    if got is None:
        return False, Msg("unit {unit!r} is no unit the harness knows", unit=reading.unit)
    value, unit = got
    if unit != before.unit:
        return False, Msg("{quantity} in {unit}, a unit of {dimension}, not of {wanted}", quantity=reading.quantity,
                           unit=reading.unit, dimension=unit, wanted=before.unit)
    step = max(before.resolution, after.resolution)
    low, high = min(before.value, after.value) - step, max(before.value, after.value) + step
    return low <= value <= high, Msg("[{low:.12g}, {high:.12g}] {unit}", low=low, high=high, unit=unit)
