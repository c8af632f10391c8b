"""Trying each operation of the profile's vocabulary as one identity, and whether it left a trace.

KZ-78-01 (and KZ-66-01 for anonymous sessions) ask, for every identity and operation: does the
device do what the role grants, and does a refusal leave everything as it was? Each operation is
tried the gentlest way the profile allows, the state is read before and after by an independent
reader (the device's own default session, not the one under test), and whatever was changed is
put back — also when a refusal that should have come did not:

- ``read``: every declared point in one Read.
- ``write_setpoint`` / ``write_parameter``: the first point of that kind with a declared range gets a
  value 5 % of the range away from its own (the range makes it safe), read back, then restored.
- ``control``: a role that may calls a control method whose ``undo`` the profile declares, then the undo
  (``conformance/opcua_control.py``); one that may not calls them all, and the device's discrete process
  state (Boolean and text process values: a pump's state) must not move — whatever moved is undone.
- ``firmware``: a call that has no effect in the update state the device is in — Confirm with nothing
  on trial, else Install with nothing transferred — and never while an update is under way. The
  update logic answers it (BadInvalidState) for a role that may; a role that may not must get an
  access refusal, not a state one (a state answer means the role check was passed).
- ``manage_log``: a role that may not calls the declared clear method; the log must keep its entries.
  A role that may is not made to clear the device's audit trail: it calls the clear method with one
  argument too many, and an argument answer (Bad_TooManyArguments) shows the role check let it through.
- ``manage_users`` (and any other operation only methods of that kind exercise): a role that may not
  calls them and must be refused; a role that may calls the first with the wrong number of arguments
  (none when it declares some), so it does nothing but shows the role check was passed.
- read-only points (identity, process values): every role writes each of them and must be refused.

Anything not tried (nothing declared to try it with, or no answer) is no pass: the check is INCONCLUSIVE.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.config.opcua_map import Operation, PointKind
from harness.conformance.access_control.opcua_access import opcua_map
from harness.conformance.cleanup import restoring
from harness.conformance.opcua_control import NO_UNDO, control_methods, undoable_control
from harness.devices.api import DeviceRefused, DeviceTimeout
from harness.reporting.texts import Msg

# Answers that name the caller's right, not the device's state: proof that a role check refused the call.
ACCESS_DENIED = ("BadUserAccessDenied", "BadNotExecutable", "BadSecurityModeInsufficient", "BadNotWritable",
                 "BadNotReadable", "BadIdentityTokenRejected")
BUSY_UPDATE_STATES = ("Installing", "Activating", "Confirming")  # mid-update: the harness touches nothing
WRITE_STEP = 0.05  # of the declared range


@dataclass(frozen=True)
class Outcome:
    """How one operation went for one identity, judged against whether its role grants it."""

    passed: bool
    measured: str
    note: str = ""
    exercised: bool = True  # False: the profile gives no safe way to try it here, or no answer (note says why)
    silent: bool = False  # not exercised because the device never answered


def status_name(code: int) -> str:
    from asyncua import ua

    try:
        return str(ua.StatusCode(code).name)
    except Exception:
        return f"0x{code:08X}"


def attempt(action: Callable[[], object]) -> str | None:
    """None when the device did it; the status name of its refusal otherwise (anything else propagates)."""
    try:
        action()
    except DeviceRefused as exc:
        return status_name(exc.code)
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    return bool(a == b)


def trial_value(current: float, low: float, high: float) -> float:
    """A value inside [low, high] a step away from ``current``: safe to write, visibly different."""
    step = (high - low) * WRITE_STEP
    if not low <= current <= high:
        return (low + high) / 2
    return current + step if current + step <= high else current - step


class Exerciser:
    """Tries operations in a session under test; reads and restores through the device's default sessions."""

    def __init__(self, dut: Any, audit_since: datetime | None, *, allow_destructive: bool) -> None:
        self.dut = dut
        self.device = dut.device
        self.map = opcua_map(dut)
        self.audit_since = audit_since
        # A permitted call made with the wrong arguments does nothing on a device that keeps Part 4; on one that
        # ignores its arguments it clears the log or changes an account for real: only where the rig allows it.
        self.allow_destructive = allow_destructive

    def run(self, session: Any, operation: Operation, allowed: bool) -> Outcome:
        """How ``operation`` went; silence is no refusal — a request the device never answered is untried."""
        try:
            return self._run(session, operation, allowed)
        except DeviceTimeout as exc:
            return Outcome(False, Msg("no answer"), Msg("no answer from the device: {error}", error=exc),
                           exercised=False, silent=True)

    def read_only(self, session: Any) -> Outcome:
        try:
            return self._read_only(session)
        except DeviceTimeout as exc:
            return Outcome(False, Msg("no answer"), Msg("no answer from the device: {error}", error=exc),
                           exercised=False, silent=True)

    def _run(self, session: Any, operation: Operation, allowed: bool) -> Outcome:
        if operation == Operation.READ:
            return self._read(session, allowed)
        if operation == Operation.WRITE_SETPOINT:
            return self._write(session, PointKind.SETPOINT, allowed)
        if operation == Operation.WRITE_PARAMETER:
            return self._write(session, PointKind.PARAMETER, allowed)
        if operation == Operation.CONTROL:
            return self._control(session, allowed)
        if operation == Operation.FIRMWARE:
            return self._firmware(session, allowed)
        if operation == Operation.MANAGE_LOG:
            return self._manage_log(session, allowed)
        return self._declared_methods(session, operation, allowed)

    # ---- one operation each ------------------------------------------------------------------------------
    def _read(self, session: Any, allowed: bool) -> Outcome:
        status = attempt(lambda: session.read_many(list(self.map.points)))
        how = Msg("Read of all {n} declared points", n=len(self.map.points))
        if allowed:
            return Outcome(status is None, _done_or_refused(status), how)
        return Outcome(status is not None, _done_or_refused(status), how)

    def _write(self, session: Any, kind: PointKind, allowed: bool) -> Outcome:
        name = next((n for n, p in self.map.points.items() if p.kind == kind and p.range is not None), None)
        if name is None:
            return _not_exercised(Msg("no {kind} point with a declared range (a safe test value needs one)",
                                      kind=kind.value))
        low, high = self.map.points[name].range or (0.0, 0.0)
        before = self.device.read(name).value
        target = trial_value(float(before), low, high)
        with restoring(lambda: self._put_back(name, before)):
            status = attempt(lambda: session.write(name, target))
            after = self.device.read(name).value
        how = Msg("{name} := {target:g} (was {before:g}; range {low:g} … {high:g}); restored afterwards", name=name,
                  target=target, before=before, low=low, high=high)
        if allowed:
            if status is not None:
                return Outcome(False, _done_or_refused(status), how)
            took = _same(after, target)
            return Outcome(took, Msg("done") if took else Msg("acknowledged, but {name} reads {after}", name=name,
                                                               after=after), how)
        if status is None:
            return Outcome(False, Msg("done: {name} {before:g} → {after}", name=name, before=before, after=after), how)
        unchanged = _same(after, before)
        return Outcome(unchanged, Msg("refused ({status}), {name} unchanged", status=status, name=name) if unchanged
                       else Msg("refused ({status}), yet {name} {before:g} → {after}", status=status, name=name,
                                before=before, after=after), how)

    def _read_only(self, session: Any) -> Outcome:
        """Writes of every declared read-only point (identity, process values): whoever asks, a device refuses them
        (Part 4: Bad_NotWritable for the access level, Bad_UserAccessDenied for the user's) and nothing changes.

        A text point gets a visibly different value; a number one 10 % (at least 1) away, so that a write that took
        shows through a drifting measurement; a Boolean its own value (a process state is never switched by a
        write here). Whatever took is written back at once in the same session."""
        names = [n for n, p in self.map.points.items() if not p.writable]
        if not names:
            return _not_exercised(Msg("the profile declares no read-only point"))
        verdicts = [self._write_read_only(session, n) for n in names]
        wrong = [v for ok, v in verdicts if not ok]
        how = Msg("Write of {points}", points=", ".join(names))
        if wrong:
            return Outcome(False, Msg.joined("; ", wrong), how)
        return Outcome(True, Msg("refused ({statuses}), unchanged",
                                 statuses=", ".join(sorted({v for _, v in verdicts}))),
                       how)

    def _write_read_only(self, session: Any, name: str) -> tuple[bool, str]:
        before = self.device.read(name).value
        target: Any = before if isinstance(before, bool) else f"{before}-tek-harness" if isinstance(before, str) \
            else float(before) + max(1.0, abs(float(before)) * 0.1)
        status = attempt(lambda: session.write(name, target))
        after = self.device.read(name).value
        took = not isinstance(before, bool) and _same(after, target)
        if took or status is None:
            back = attempt(lambda: session.write(name, before)) if took else None
            undone = Msg("written back") if back is None else Msg("writing it back refused ({status})", status=back)
            what = Msg("written") if status is None else Msg("refused ({status}), yet written", status=status)
            if took:
                return False, Msg("{name}: {what} ({before!r} → {after!r}, {undone})", name=name, what=what,
                                  before=before, after=after, undone=undone)
            return False, Msg("{name}: {what} (answered Good)", name=name, what=what)
        if status not in ACCESS_DENIED:
            return False, Msg("{name}: answered {status}, not a refusal for the access", name=name, status=status)
        return True, status

    def _put_back(self, name: str, value: Any) -> None:
        if not _same(self.device.read(name).value, value):
            self.device.write(name, value)

    def _control(self, session: Any, allowed: bool) -> Outcome:
        methods = control_methods(self.dut.profile)
        if not methods:
            return _not_exercised(Msg("the profile declares no control method"))
        if allowed:  # act on the plant only through a method the profile says how to undo
            chosen = undoable_control(self.dut.profile, self.device)
            if chosen is None:
                return _not_exercised(NO_UNDO)
            name, method = chosen
            status = attempt(lambda: session.call(name))
            if status is None:
                self.device.call(method.undo)
            return Outcome(status is None, _done_or_refused(status),
                           Msg("called {name}, then {undo} to put it back", name=name, undo=method.undo))
        before = self._discrete()
        with restoring(lambda: self._restore_discrete(before, methods)):
            statuses = {m: attempt(lambda m=m: session.call(m)) for m in methods}
            after = self._discrete()
        moved = {k: (before[k], after.get(k)) for k in before if not _same(before[k], after.get(k))}
        how = Msg("called {methods}; watched {watched}", methods=", ".join(methods),
                  watched=", ".join(before) if before else Msg("no discrete process value"))
        done = [m for m, s in statuses.items() if s is None]
        if done:
            return Outcome(False, Msg("done: {methods}", methods=", ".join(done)), how)
        codes = ", ".join(sorted(set(statuses.values())))
        if moved:
            return Outcome(False, Msg("refused ({codes}), yet {moved}", codes=codes,
                                      moved=", ".join(f"{k} {a} → {b}" for k, (a, b) in moved.items())), how)
        return Outcome(True, Msg("refused ({codes}), process state unchanged", codes=codes) if before else
                       Msg("refused ({codes}), no discrete process value to watch", codes=codes), how)

    def _discrete(self) -> dict[str, Any]:
        """The device's discrete process state: Boolean and text process values (continuous ones drift)."""
        names = [n for n, p in self.map.points.items() if p.kind == PointKind.PROCESS_VALUE]
        if not names:
            return {}
        values = {n: r.value for n, r in self.device.read_many(names).items()}
        return {n: v for n, v in values.items() if isinstance(v, bool | str)}

    def _restore_discrete(self, before: dict[str, Any], methods: dict[str, Any]) -> None:
        """After a refused role's calls: undo (as a role that may) every method that did act, where declared."""
        for method in methods.values():
            if all(_same(v, before[k]) for k, v in self._discrete().items() if k in before):
                return
            if method.undo is not None and any(not _same(self.device.read(p).value, before.get(p))
                                               for p in method.sets if p in before):
                self.device.call(method.undo)

    def _firmware(self, session: Any, allowed: bool) -> Outcome:
        update = self.map.update
        if update is None:
            return _not_exercised(Msg("the profile declares no software update (opcua.update)"))
        helper = self.device.update
        state, version = helper.state(), helper.running_version()
        if state in BUSY_UPDATE_STATES:
            return _not_exercised(Msg("the device is mid-update (state {state}): nothing is called", state=state))
        if update.methods.confirm is not None:
            method, how = update.methods.confirm, Msg("Confirm with nothing on trial (state {state})", state=state)
        elif state != "Transferred":
            method, how = update.methods.install, Msg("Install with nothing transferred (state {state})", state=state)
        else:
            return _not_exercised(Msg("an image is transferred and the profile declares no Confirm: any call could "
                                      "install it"))
        status = attempt(lambda: session.call_node(update.object, method))
        after = (helper.state(), helper.running_version())
        unchanged = after == (state, version)
        if allowed:
            passed = status is None or status not in ACCESS_DENIED
            return Outcome(passed, _done_or_refused(status) if status is None or not passed else
                           Msg("reached the update logic ({status})", status=status), how)
        if status is None:
            return Outcome(False, Msg("done: state {state} → {after}, version {version} → {new}", state=state,
                                      after=after[0], version=version, new=after[1]), how)
        if status not in ACCESS_DENIED:
            return Outcome(False, Msg("answered {status}: refused for the device's state, not for the role",
                                      status=status), how)
        return Outcome(unchanged, _done_or_refused(status) if unchanged else
                       Msg("refused ({status}), yet state {state} → {after}", status=status, state=state,
                           after=after[0]), how)

    def _manage_log(self, session: Any, allowed: bool) -> Outcome:
        audit = self.map.audit_log
        clear = audit.clear if audit is not None else None
        if audit is None or clear is None:
            return _not_exercised(Msg("the profile declares no way to clear the audit log (audit_log.clear)"))
        if allowed:  # never made to clear the device's audit trail: only its argument check is reached
            return self._wrong_arguments(session, clear.object, clear.method, Msg("the audit log's clear method"))
        before = self.device.read_audit_log(start=self.audit_since)
        status = attempt(lambda: session.call_node(clear.object, clear.method))
        after = self.device.read_audit_log(start=self.audit_since)
        kept = {_entry_key(e) for e in before} <= {_entry_key(e) for e in after}
        how = Msg("clear of the audit log; {before} entries since the check began before, {after} after",
                  before=len(before), after=len(after))
        if status is None:
            return Outcome(False, Msg("done") if kept else Msg("done: the log was emptied"), how)
        return Outcome(kept, Msg("refused ({status}), log kept", status=status) if kept
                       else Msg("refused ({status}), yet entries are gone", status=status), how)

    def _wrong_arguments(self, session: Any, object_node: str, method_node: str, what: str) -> Outcome:
        """Call a method a role may call, with arguments it cannot take (none when it declares some, one too many
        when it declares none), so that it does nothing but shows the role check was passed. A device that ignores
        its arguments would run it for real (clear its log, change an account): destructive, so tried only on a rig
        with allow_destructive."""
        if not self.allow_destructive:
            return _not_exercised(Msg("{what} is permitted; calling it with wrong arguments shows the role check "
                                      "passed, but a device that ignores its arguments would run it for real — tried "
                                      "only on a rig with allow_destructive: true", what=what))
        declared = session.input_arguments(method_node)
        extra = () if declared else ("tek-harness: one argument too many",)
        status = attempt(lambda: session.call_node(object_node, method_node, *extra))
        how = Msg("{what} called with {given} of its {declared} input argument(s): it must do nothing", what=what,
                  given=len(extra), declared=declared)
        return _reached(status, how)

    def _declared_methods(self, session: Any, operation: Operation, allowed: bool) -> Outcome:
        methods = [n for n, m in self.map.methods.items() if m.kind == operation]
        if not methods:
            return _not_exercised(Msg("the profile gives no way to exercise {operation}", operation=operation.value))
        if allowed:  # their effect is unknown: a role that may only reaches their argument check
            method = self.map.methods[methods[0]]
            return self._wrong_arguments(session, method.object, method.method, methods[0])
        statuses = {m: attempt(lambda m=m: session.call(m)) for m in methods}
        wrong = {m: s for m, s in statuses.items() if s is None or s not in ACCESS_DENIED}
        how = Msg("called {methods} without arguments", methods=", ".join(methods))
        if wrong:
            return Outcome(False, Msg.joined(", ", (Msg("{method}: {status}", method=m, status=s or Msg("done"))
                                                    for m, s in wrong.items())), how)
        return Outcome(True, _done_or_refused(", ".join(sorted(set(filter(None, statuses.values()))))), how)


def _done_or_refused(status: str | None) -> Msg:
    """"done" (None: the device did it), else "refused (its status name)"."""
    return Msg("done") if status is None else Msg("refused ({status})", status=status)


def _reached(status: str | None, how: str) -> Outcome:
    """A permitted call made with the wrong number of arguments: the answer shows whether the role check let it
    through (an argument or state answer) or refused it (an access answer)."""
    if status is None:
        return Outcome(True, Msg("done"), Msg("{how}; the device ran it all the same (Part 4 asks for "
                                              "Bad_ArgumentsMissing or Bad_TooManyArguments)", how=how))
    if status in ACCESS_DENIED:
        return Outcome(False, _done_or_refused(status), how)
    return Outcome(True, Msg("reached the method's own checks ({status})", status=status), how)


def _not_exercised(why: str) -> Outcome:
    return Outcome(True, Msg("not exercised"), why, exercised=False)


def _entry_key(entry: Any) -> tuple[Any, ...]:
    return entry.time, entry.category, entry.user, entry.subject, entry.outcome
