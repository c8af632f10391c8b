"""What the controller audit-log checks (cl. 69) share: the declared log, entry identity, the accounts
the rig gives, and the events the bench can provoke — each undone afterwards where it changed anything.

The meters' trigger matrix (provoke.py) writes registers and flips tamper inputs; a controller's
events are who did what over OPC UA, so here the matrix opens sessions, calls a declared control
method, writes a setpoint and raises an alarm through the rig's alarm injector. Everything goes
through the Device API (``dut.device``) or a fault injector, never the simulator, so the same matrix
runs on a real bench with whatever injectors it wires; what a bench cannot provoke is reported and
makes the check INCONCLUSIVE, never PASS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness import registry
from harness.config.opcua_map import AuditLog, Operation, PointKind
from harness.conformance.opcua_control import NO_UNDO, control_methods, undoable_control
from harness.events import AuditEntry, AuditKind
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

# The five kinds cl. 69 names (control events, user access both ways, settings changes, abnormal situations).
REQUIRED_KINDS = (AuditKind.CONTROL_ACTION, AuditKind.LOGIN_SUCCESS, AuditKind.LOGIN_FAILURE,
                  AuditKind.SETTINGS_CHANGE, AuditKind.ALARM)
# Kinds other checks provoke: judging them here would mean locking accounts or installing firmware twice.
ELSEWHERE = {AuditKind.SECURITY_EVENT: Msg("suite access_control (refused sessions, writes and calls, lockout)"),
             AuditKind.FIRMWARE_UPDATE: Msg("suite update (KZ-70)"),
             AuditKind.LOG_CLEARED: Msg("KZ-69-02 (a non-administrator's clear must be refused; an administrator "
                                        "clears a real device's history nowhere, only the year KZ-69-04 synthesizes "
                                        "on a simulator)")}
Key = tuple[Any, ...]


def audit_log_of(dut: Any) -> AuditLog:
    """The profile's audit-log declaration; its absence FAILs (cl. 69 requires control systems to log events)."""
    opcua = getattr(dut.profile, "opcua", None)
    audit = opcua.audit_log if opcua is not None else None
    if audit is None:
        raise AssertionError(Msg("profile {model} declares no audit log (opcua.audit_log); cl. 69 requires control "
                                 "events, user access, settings changes and alarms to be logged",
                                 model=dut.profile.model))
    return audit


# ---- accounts ----------------------------------------------------------------------------------------------
def account(dut: Any, role: str) -> str | None:
    """The user name the rig's account for ``role`` logs in with (None for a certificate account)."""
    cred = dut.spec.credentials.get(role)
    return cred.user if cred is not None else None


def role_for(dut: Any, operation: Operation) -> str | None:
    """The least privileged declared role that may perform ``operation`` and for which the rig gives an account
    (a user-name account before a certificate one: the log then names a user the harness can predict)."""
    roles = [r for r in dut.profile.opcua.roles_allowing(operation) if r in dut.spec.credentials]
    named = [r for r in roles if account(dut, r) is not None]
    return (named or roles or [None])[0]


def login_role(dut: Any) -> str | None:
    """The account the login provocations use: the least privileged one with a user name and password."""
    roles = sorted(dut.profile.opcua.roles, key=lambda r: len(dut.profile.opcua.roles[r]))
    return next((r for r in roles if account(dut, r) is not None), None)


# ---- entries -------------------------------------------------------------------------------------------------
def key(entry: AuditEntry) -> Key:
    """What makes an entry the same entry when read again: the device's EventId (when it sends one) and
    every canonical field — an entry whose id comes back with other content was altered."""
    return (event_id(entry), entry.time, entry.category, entry.user, entry.outcome, entry.subject,
            repr(entry.old), repr(entry.new))


def event_id(entry: AuditEntry) -> Any:
    value = entry.raw.get("EventId")
    return bytes(value) if isinstance(value, bytes | bytearray) else value


def new_entries(before: Iterable[AuditEntry], after: Iterable[AuditEntry]) -> list[AuditEntry]:
    seen = {key(e) for e in before}
    return [e for e in after if key(e) not in seen]


def missing(before: Iterable[AuditEntry], after: Iterable[AuditEntry]) -> tuple[list[AuditEntry], int]:
    """Entries of ``before`` not found unchanged in ``after``, and how many of them came back altered (same
    EventId, other content)."""
    kept = {key(e) for e in after}
    ids = {event_id(e) for e in after if event_id(e) is not None}
    lost = [e for e in before if key(e) not in kept]
    return lost, sum(1 for e in lost if event_id(e) is not None and event_id(e) in ids)


def describe(entries: Iterable[AuditEntry]) -> str:
    said = [Msg("{kind} by {user}", kind=e.kind.value if e.kind else e.category, user=e.user or Msg("(no user)"))
            for e in entries]
    return Msg.joined(", ", said) if said else Msg("none")


def same_value(measured: Any, expected: Any) -> bool:
    """An old/new value as logged against the value written (numbers to 1 ppm: they travel as Double)."""
    if isinstance(expected, int | float) and isinstance(measured, int | float) and not isinstance(measured, bool):
        return math.isclose(float(measured), float(expected), rel_tol=1e-6, abs_tol=1e-9)
    return measured == expected


# ---- the bench's ways to provoke events -----------------------------------------------------------------------
@dataclass
class AuditProvocation:
    """One way to make the DUT log one event of ``kind``; ``do`` provokes, ``undo`` restores. What the entry must
    say: ``user`` (None: not judged — the device itself acted), ``outcome``, and for settings ``old``/``new``
    (device units)."""

    kind: AuditKind
    how: str
    do: Callable[[], None]
    undo: Callable[[], None] = lambda: None
    user: str | None = None
    outcome: bool = True
    old: Any = None
    new: Any = None
    user_note: str = ""


def alarm_injector(dut: Any) -> Any:
    """The rig's way to raise an alarm (the first ``alarm`` injector that can serve this DUT), or None."""
    for spec in registry.fault_injectors("alarm").values():
        injector = spec.factory(dut)
        if injector is not None:
            return injector
    return None


def audit_provocations(dut: Any, kinds: Iterable[AuditKind]) -> tuple[list[AuditProvocation], dict[AuditKind, str]]:
    """For each of ``kinds``: how to provoke it on this bench, or why it cannot be."""
    makers: dict[AuditKind, Callable[[Any], AuditProvocation | str]] = {
        AuditKind.CONTROL_ACTION: _control_action, AuditKind.LOGIN_SUCCESS: _login_success,
        AuditKind.LOGIN_FAILURE: _login_failure, AuditKind.SETTINGS_CHANGE: _settings_change,
        AuditKind.ALARM: _alarm}
    out: list[AuditProvocation] = []
    cannot: dict[AuditKind, str] = {}
    for kind in kinds:
        made = makers[kind](dut) if kind in makers else "the bench has no way to provoke it"
        if isinstance(made, str):
            cannot[kind] = made
        else:
            out.append(made)
    return out, cannot


def _login_success(dut: Any) -> AuditProvocation | str:
    role = login_role(dut)
    if role is None:
        return Msg("the rig gives no user-name account (credentials with user and password)")

    def do() -> None:
        attempt = dut.device.attempt_session(role=role)
        if not attempt.accepted:
            raise AssertionError(Msg("the rig's {role} account ({account}) could not log in: {status} at {step}",
                                     role=role, account=account(dut, role), status=attempt.status_name or attempt.error,
                                     step=attempt.step))

    return AuditProvocation(AuditKind.LOGIN_SUCCESS,
                            Msg("session opened as {role} ({account})", role=role, account=account(dut, role)), do,
                            user=account(dut, role))


def _login_failure(dut: Any) -> AuditProvocation | str:
    role = login_role(dut)
    if role is None:
        return Msg("the rig gives no user-name account (credentials with user and password)")
    lockout = dut.profile.opcua.security.lockout
    if lockout is not None and lockout.after_failures < 2:
        return Msg("the device locks an account after {n} failure: one wrong password would lock the rig's account "
                   "for the checks that follow", n=lockout.after_failures)
    user = account(dut, role)
    cred = dut.spec.credentials[role]

    def do() -> None:
        attempt = dut.device.attempt_session(identity=(user, f"{cred.password}-wrong"))
        if attempt.accepted:
            raise AssertionError(Msg("a wrong password for {user} was accepted", user=user))

    def undo() -> None:  # a good login ends the run of failures: the lockout counter starts again from zero
        dut.device.attempt_session(role=role)

    how = Msg("one wrong password for {user} (lockout after {n} failures)", user=user, n=lockout.after_failures) \
        if lockout else Msg("one wrong password for {user} (no lockout declared)", user=user)
    return AuditProvocation(AuditKind.LOGIN_FAILURE, how, do, undo, user=user, outcome=False)


def _settings_change(dut: Any) -> AuditProvocation | str:
    """A setpoint (else a parameter) with a declared range, moved by 1 % of its range and put back."""
    opcua = dut.profile.opcua
    for kind, operation in ((PointKind.SETPOINT, Operation.WRITE_SETPOINT),
                            (PointKind.PARAMETER, Operation.WRITE_PARAMETER)):
        role = role_for(dut, operation)
        if role is None:
            continue
        for name, point in opcua.points.items():
            if point.kind != kind or point.range is None:
                continue
            low, high = point.range
            original = dut.device.read(name).value  # canonical units; the log and the range are the device's
            old = original / point.factor
            step = (high - low) * 0.01
            new = old + step if old + step <= high else old - step
            if not low <= new <= high:
                new = (low + high) / 2
            return AuditProvocation(
                AuditKind.SETTINGS_CHANGE,
                Msg("{name} written {old:g} → {new:g} as {role}", name=name, old=old, new=new, role=role),
                lambda n=name, v=new * point.factor, r=role: dut.device.write(n, v, role=r),
                lambda n=name, v=original, r=role: dut.device.write(n, v, role=r),
                user=account(dut, role), old=old, new=new)
    return Msg("no setpoint or parameter declares a range (a safe value to write) and a role the rig has an account "
               "for")


def _control_action(dut: Any) -> AuditProvocation | str:
    """A declared control method with its ``undo`` (``harness.conformance.opcua_control``), called by the least
    privileged role allowed, then undone."""
    if not control_methods(dut.profile):
        return Msg("the profile declares no method of kind control")
    role = role_for(dut, Operation.CONTROL)
    if role is None:
        return Msg("the rig gives no account for a role that may call control methods")
    chosen = undoable_control(dut.profile, dut.device)
    if chosen is None:
        return NO_UNDO
    name, method = chosen
    return AuditProvocation(AuditKind.CONTROL_ACTION,
                            Msg("{name} called as {role} ({undo} puts it back)", name=name, role=role,
                                undo=method.undo),
                            lambda: dut.device.call(name, role=role),
                            lambda: dut.device.call(method.undo, role=role), user=account(dut, role))


def _alarm(dut: Any) -> AuditProvocation | str:
    injector = alarm_injector(dut)
    if injector is None:
        return Msg("the rig wires no alarm injector (a simulator's control channel, or a relay on an alarm input)")
    return AuditProvocation(AuditKind.ALARM, Msg("alarm raised by the rig's alarm injector"),
                            lambda: injector.raise_alarm("harness_test_alarm", "test alarm raised by the harness "
                                                         "(cl. 69 trigger matrix)"),
                            user_note=Msg("raised by the device itself: any user it names is accepted"))


def device_clock(dut: Any) -> Any:
    """A clock reading, or INCONCLUSIVE: without the device's time no entry's time can be judged."""
    if dut.profile.clock is None or "clock" not in dut.profile.opcua.points:
        raise Inconclusive(Msg("the profile declares no device clock, so audit-log timestamps cannot be judged"))
    return dut.device.read_clock()
