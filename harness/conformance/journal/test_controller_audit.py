"""cl. 69 control-system event logging, for controllers: every event kind the Rules name is logged with
time, user, category, outcome and old/new value; a non-administrator can neither clear nor alter the
log; entries survive a power cut; and the log holds 12 months at the declared event rate."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.config.opcua_map import AuditLog, Operation
from harness.conformance.bounds import EVENT_TIMESTAMP
from harness.conformance.cleanup import restoring
from harness.conformance.journal.audit_provoke import (
    ELSEWHERE,
    REQUIRED_KINDS,
    AuditProvocation,
    audit_log_of,
    audit_provocations,
    describe,
    device_clock,
    login_role,
    missing,
    new_entries,
    role_for,
    same_value,
)
from harness.conformance.journal.provoke import outside
from harness.conformance.power import power_switch
from harness.devices.api import DeviceRefused
from harness.events import AuditEntry, AuditKind
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("controller")

LOOKBACK = timedelta(days=1)  # new entries are looked for from a day before the action (not the whole log)
YEAR_DAYS = 365
FILL_DAYS = YEAR_DAYS + 1  # a year and a day of events: the 12 months are complete whatever the edges
MAX_NODES = 50  # audit-object nodes tried per role in KZ-69-02, at most


# ---- KZ-69-01 -------------------------------------------------------------------------------------------
@pytest.mark.check("KZ-69-01", "trigger matrix: each event kind cl. 69 names (control action, login success and "
                   "failure, settings change, alarm) is logged once, with time, user, category, outcome and "
                   "old/new value")
def test_every_kind_logged(dut, check):
    audit = audit_log_of(dut)
    _fields_declared(check, audit)
    for kind in REQUIRED_KINDS:
        if kind not in audit.kinds:
            check.measure(Msg("{value} logged", value=kind.value), Msg("not declared"), passed=False,
                          limit=Msg("declared in audit_log.kinds"),
                          note=Msg("the device does not log {replace}s: cl. 69 requires it",
                                   replace=kind.value.replace('_', ' ')))
    for kind, where in ELSEWHERE.items():
        check.measure(Msg("{value}: judged elsewhere",
                          value=kind.value), Msg("declared") if kind in audit.kinds else Msg("not declared"),
                      passed=True, note=where)
    device_clock(dut)  # no clock, no judgement of times
    matrix, cannot = audit_provocations(dut, [k for k in REQUIRED_KINDS if k in audit.kinds])
    for p in matrix:
        _provoke_and_judge(check, dut, audit, p)
    for kind, why in cannot.items():
        check.measure(Msg("{kind}: not provoked", kind=kind.value), why, passed=True,
                      note=Msg("INCONCLUSIVE for this kind"))
    check.require()
    if cannot:
        raise Inconclusive(Msg("kinds the bench cannot provoke: {kinds}", kinds=Msg.joined("; ", (
            Msg("{kind} ({why})", kind=k.value, why=why) for k, why in cannot.items()))))


def _fields_declared(check, audit: AuditLog) -> None:
    """The fields cl. 69 asks of every entry must be mapped to an event property, or nothing can carry them."""
    f = audit.fields
    for name, prop in (("user", f.user), ("outcome", f.outcome), ("old", f.old), ("new", f.new)):
        check.measure(Msg("field {name} mapped", name=name), prop or Msg("not declared"), passed=prop is not None,
                      limit=Msg("an event property"),
                      note="" if prop else Msg("audit_log.fields declares no {name}: entries cannot say {what}",
                                               name=name, what=Msg("who acted") if name == "user"
                                               else Msg("whether it succeeded") if name == "outcome"
                                               else Msg("the {name} value of a setting", name=name)))


def _provoke_and_judge(check, dut: Any, audit: AuditLog, p: AuditProvocation) -> None:
    """Exactly one new entry of the kind, stamped within the tolerance of the device-clock window around the
    action, carrying the account, the category, the outcome and (settings) the old and new value."""
    tol = EVENT_TIMESTAMP.limit(check, audit.timestamp_tolerance_s)
    c0 = dut.device.read_clock()
    since = c0.value - LOOKBACK
    before = dut.device.read_audit_log(start=since)
    with restoring(p.undo):
        p.do()
        c1 = dut.device.read_clock()
        new = new_entries(before, dut.device.read_audit_log(start=since))
    label = p.how
    matching = [e for e in new if e.kind == p.kind]
    check.equal(Msg("{label}: new {value} entries", label=label, value=p.kind.value), len(matching), 1,
                note=Msg("{n} new entries in all: {describe}", n=len(new), describe=describe(new)))
    unmapped = sorted({str(e.category) for e in new if e.kind is None})
    check.equal(Msg("{label}: new entries of a category the profile does not map", label=label), len(unmapped), 0,
                note=Msg("categories {unmapped}", unmapped=unmapped) if unmapped else "")
    if len(matching) != 1:
        return
    e = matching[0]
    _judge_time(check, label, e, c0.value, c1.value, tol)
    if p.user is not None:
        check.equal(Msg("{label}: user", label=label), e.user, p.user, note=Msg("the rig's account that acted"))
    else:
        check.measure(Msg("{label}: user", label=label), Msg("“{user}”", user=e.user), passed=True,
                      note=p.user_note)  # the name the device itself wrote: quoted, never a word of ours
    check.equal(Msg("{label}: category",
                    label=label), e.category, audit.kinds[p.kind], note=Msg("mapped to {value}",
                                                                                value=p.kind.value))
    check.equal(Msg("{label}: outcome", label=label), e.outcome, p.outcome,
                note=Msg("a refused login is logged as failed") if not p.outcome else Msg("the action succeeded"))
    if p.kind == AuditKind.SETTINGS_CHANGE:
        check.measure(Msg("{label}: old value",
                          label=label), e.old, passed=same_value(e.old, p.old), limit=Msg("= {old:g}", old=p.old))
        check.measure(Msg("{label}: new value",
                          label=label), e.new, passed=same_value(e.new, p.new), limit=Msg("= {new:g}", new=p.new))


def _judge_time(check, label: str, e: AuditEntry, low: datetime, high: datetime, tol: float) -> None:
    if e.time is None:
        check.measure(Msg("{label}: time", label=label), Msg("none"), passed=False,
                      limit=Msg("the device time of the event"))
        return
    check.within(Msg("{label}: time error", label=label), outside(e.time, low, high), -tol, tol, unit="s",
                 note=Msg("stamped {isoformat}, action between {isoformat2} and {isoformat3} device time "
                          "(audit_log.timestamp_tolerance_s)", isoformat=e.time.astimezone(UTC).isoformat(),
                          isoformat2=low.astimezone(UTC).isoformat(), isoformat3=high.astimezone(UTC).isoformat()))


# ---- KZ-69-02 -------------------------------------------------------------------------------------------
@pytest.mark.check("KZ-69-02", "a non-administrator (every role without manage_log) can neither clear the audit log "
                   "nor alter its entries")
def test_log_protected_from_non_administrators(dut, check):
    audit = audit_log_of(dut)
    roles = dut.profile.opcua.roles
    others = [r for r, ops in roles.items() if Operation.MANAGE_LOG not in ops]
    if not others:
        raise Inconclusive(Msg("every declared role may manage the log: there is no non-administrator to try"))
    testable = [r for r in others if r in dut.spec.credentials]
    untested = [r for r in others if r not in testable]
    for role in untested:
        check.measure(Msg("{role}: not tried",
                          role=role), Msg("no account in the rig"), passed=True, note=Msg("INCONCLUSIVE for this role"))
    if not testable:
        raise Inconclusive(Msg("the rig gives no account for the non-administrator roles {items}",
                               items=', '.join(others)))
    if audit.clear is not None:
        logged = AuditKind.LOG_CLEARED in audit.kinds
        check.measure(Msg("clearing is logged (log_cleared declared)"),
                      Msg("declared") if logged else Msg("not declared"),
                      passed=logged, note=ELSEWHERE[AuditKind.LOG_CLEARED] if logged else
                      Msg("the profile declares a clear method but no log_cleared kind: a clear would leave no trace"))
    for role in testable:
        _clear_refused(check, dut, audit, role)
    _writes_refused(check, dut, audit, testable)
    check.require()
    if audit.clear is None:  # no method to call and no object to write: nothing of the claim was tried
        raise Inconclusive(Msg("neither a clear nor a write of the log could be tried as a non-administrator: the "
                               "profile declares no clear method and no object of the log (audit_log.clear: "
                               "object, method); the driver sends no HistoryUpdate"))
    if untested:
        raise Inconclusive(Msg("roles without an account in the rig were not tried: {items}",
                               items=', '.join(untested)))


def _clear_refused(check, dut: Any, audit: AuditLog, role: str) -> None:
    """``role`` calls the declared clear method: refused, and every entry of the last day is still there."""
    since = dut.device.read_clock().value - LOOKBACK if "clock" in dut.profile.opcua.points else None
    before = dut.device.read_audit_log(start=since)
    if audit.clear is None:
        check.measure(Msg("clear of the log as {role}", role=role), Msg("no clear method declared"), passed=True,
                      note=Msg("the profile declares no way to clear the log (audit_log.clear); nothing to call"))
        return
    try:
        dut.device.clear_audit_log(role=role)
        outcome, refused = "accepted", False
    except DeviceRefused as exc:
        outcome, refused = str(exc).rsplit(" refused with ", 1)[-1], True
    check.measure(Msg("clear of the log as {role}", role=role), outcome, passed=refused, limit=Msg("refused"))
    after = dut.device.read_audit_log(start=since)
    lost, _ = missing(before, after)
    new = new_entries(before, after)
    check.equal(Msg("entries gone after {role}'s clear", role=role), len(lost), 0,
                note=Msg("{n} entries of the last day before, {n2} after; new: {describe}", n=len(before),
                         n2=len(after), describe=describe(new)))
    if not refused:
        cleared = [e for e in new if e.kind == AuditKind.LOG_CLEARED]
        check.measure(Msg("{role}'s clear logged as log_cleared", role=role), len(cleared), passed=True,
                      note=Msg("informative: the clear should have been refused"))


def _writes_refused(check, dut: Any, audit: AuditLog, roles: list[str]) -> None:
    """Each non-administrator writes every variable of the log's object (browsed) back with its own value: each
    write must be refused. The object is the one the clear method lives on; without one, entries are reachable
    only by HistoryRead (the driver sends no HistoryUpdate)."""
    obj = audit.clear.object if audit.clear is not None else None
    if obj is None:
        check.measure(Msg("writes to the audit log's nodes"), Msg("no audit object declared"), passed=True,
                      note=Msg("the profile names no object of the log (audit_log.clear.object): its entries are "
                               "reached only by HistoryRead; HistoryUpdate is not tried"))
        return
    for role in roles:
        with dut.device.session(role=role) as session:
            children, variables = _variables(session, obj)
            if not variables:
                check.measure(Msg("writable nodes of {obj} as {role}", obj=obj, role=role), 0, passed=True,
                              note=Msg("browsed: {value}; no variable to write (HistoryUpdate is not tried)",
                                       value=', '.join(children) or 'no children'))
            for node in variables:
                try:
                    session.write_node(node, session.read_node(node))
                    outcome, refused = "accepted", False
                except DeviceRefused as exc:
                    outcome, refused = str(exc).rsplit(" refused with ", 1)[-1], True
                check.measure(Msg("write of {node} as {role}", node=node,
                                  role=role), outcome, passed=refused, limit=Msg("refused"))


def _variables(session: Any, obj: str) -> tuple[list[str], list[str]]:
    """(browse names of the object's children, the variables under it — two levels deep, bounded)."""
    children = session.browse(obj)
    names = [c["browse_name"] for c in children]
    variables = [c["node"] for c in children if c["node_class"] == "Variable"]
    for child in children:
        if child["node_class"] == "Object" and len(variables) < MAX_NODES:
            variables += [g["node"] for g in session.browse(child["node"]) if g["node_class"] == "Variable"]
    return names, variables[:MAX_NODES]


# ---- KZ-69-03 -------------------------------------------------------------------------------------------
@pytest.mark.destructive
@pytest.mark.check("KZ-69-03", "every audit-log entry survives a power cut unchanged (non-volatile storage)")
def test_entries_survive_power_cut(dut, check):
    audit = audit_log_of(dut)
    power = power_switch(dut)
    role = login_role(dut)
    if role is not None:
        dut.device.attempt_session(role=role)  # something recent to lose
    before = dut.device.read_audit_log()
    if not before:
        raise Inconclusive(Msg("the audit log is empty and the bench could not provoke an entry to keep"))
    _t_off, _t_on, ready = power.cut(dut.spec.power.off_time_s)
    after = dut.device.read_audit_log()
    new = new_entries(before, after)
    may_drop = max(0, len(before) + len(new) - audit.capacity) if audit.capacity else 0
    lost, altered = missing(before, after)
    check.at_most(Msg("entries lost or altered across the cut"), len(lost) - may_drop, 0,
                  note=Msg("{n} before, {n2} after ({n3} new, {may_drop} may be overwritten)", n=len(before),
                           n2=len(after), n3=len(new), may_drop=may_drop)
                       + (Msg("; {altered} came back altered; first lost: {entry} of {when}", altered=altered,
                              entry=describe(lost[:1]), when=_when(lost[0]))
                          if lost else ""))
    check.measure(Msg("entries logged across the cut"), len(new), passed=True,
                  note=Msg("informative (a power cycle need not be logged): {describe}; ready {ready:.2f} s after "
                           "power-on", describe=describe(new), ready=ready))
    check.require()


def _when(e: AuditEntry) -> str:
    return e.time.astimezone(UTC).isoformat() if e.time else "no time"


# ---- KZ-69-04 -------------------------------------------------------------------------------------------
@pytest.mark.destructive
@pytest.mark.check("KZ-69-04", "retention: after 12 months of device time at the declared event rate the log still "
                   "holds the whole year (span ≥ 365 days, declared capacity ≥ 365 × rate)")
def test_retention_12_months(dut, check):
    audit = audit_log_of(dut)
    rate, capacity = audit.events_per_day, audit.capacity
    check.measure(Msg("events_per_day declared"), rate or Msg("not declared"), passed=bool(rate), limit=Msg("> 0"),
                  note=Msg("the declared event rate sizes the 12 months the log must hold"))
    check.measure(Msg("capacity declared"), capacity or Msg("not declared"), passed=capacity is not None)
    if rate and capacity:
        check.at_least(Msg("declared capacity"), capacity, YEAR_DAYS * rate,
                       note=Msg("{rate}/day × {year_days} d; capacity "
                                                                                 "÷ rate = {value:.0f} d", rate=rate,
                                                                                 year_days=YEAR_DAYS,
                                                                                 value=capacity / rate))
    check.require()
    assert rate is not None
    if not dut.time.fast:
        raise Inconclusive(Msg("12 months of logged events need a DUT whose history can be fast-forwarded (a "
                               "simulator's control channel); on a real device retention follows from capacity ÷ "
                               "rate"))
    c0 = device_clock(dut)
    t0 = time.monotonic()
    generated = dut.time.synthesize_events(FILL_DAYS, rate)
    fill_s = time.monotonic() - t0
    with restoring(lambda: _forget_the_year(check, dut, audit)):
        c1 = dut.device.read_clock()
        check.measure(Msg("events logged over the year"), generated, passed=generated >= FILL_DAYS * rate - 1,
                      limit=Msg("≈ {value}",
                                value=FILL_DAYS * rate), note=Msg("{rate}/day for {fill_days} days of device time "
                                                              "(clock {value:%Y-%m-%d} → {value2:%Y-%m-%d}) in "
                                                              "{fill_s:.2f} s", rate=rate, fill_days=FILL_DAYS,
                                                              value=c0.value, value2=c1.value, fill_s=fill_s))
        read_s = _judge_the_year(check, dut, rate, c1.value)
        check.measure(Msg("wall time"), round(fill_s + read_s, 2), passed=True, unit="s",
                      note=Msg("simulated time: fill {fill_s:.2f} s, range reads of the newest and oldest entries "
                               "{read_s:.2f} s", fill_s=fill_s, read_s=read_s))
    check.require()


def _judge_the_year(check, dut: Any, rate: int, now: datetime) -> float:
    """The newest entry (read: the last day) and the oldest (read: everything up to the first day of the 12
    months before it): span and density at the declared rate. Returns the wall time the reads took."""
    t0 = time.monotonic()
    newest = _newest(dut.device.read_audit_log(start=now - timedelta(days=1)))
    if newest is None or newest.time is None:
        check.measure(Msg("newest entry"), Msg("none in the last day"), passed=False,
                      limit=Msg("the last event of the year"))
        return time.monotonic() - t0
    step = timedelta(days=1) / rate
    year_start = newest.time - timedelta(days=YEAR_DAYS) + step  # the first event of the last 12 months
    window = max(timedelta(days=1), 10 * step)
    older = [e for e in dut.device.read_audit_log(end=year_start + window) if e.time is not None]
    oldest = older[0] if older else _oldest_after(dut, year_start + window, newest.time)
    took = time.monotonic() - t0
    span = (newest.time - oldest.time + step) / timedelta(days=1) if oldest is not None and oldest.time else 0.0
    check.at_least(Msg("history held"), round(span, 2), YEAR_DAYS, unit="d",
                   note=Msg("oldest entry {value}, newest {when} (+ one interval at the declared rate); {n} "
                            "entries read up to the first day of the 12 months",
                            value=_when(oldest) if oldest else 'none', when=_when(newest), n=len(older)))
    first_day = [e for e in older if e.time is not None and year_start <= e.time < year_start + window]
    check.at_least(Msg("entries held in the first day of the 12 months"), len(first_day), int(window / step) - 1,
                   note=Msg("from {isoformat}: the oldest events are kept at the declared rate, not thinned",
                            isoformat=year_start.astimezone(UTC).isoformat()))
    return took


def _forget_the_year(check, dut: Any, audit: AuditLog) -> None:
    """A year of synthesized history would make every later whole-log read (other suites) take seconds: an
    administrator clears it, as the device's own clear method allows. Informative: cl. 69 asks only that a
    clear be logged, which the entry it leaves shows."""
    role = role_for(dut, audit.clear.kind) if audit.clear is not None else None
    if role is None:
        check.measure(Msg("synthesized history left in the log"), Msg("no clear method or administrator account"),
                      passed=True, note=Msg("later whole-log reads will be slow"))
        return
    now = dut.device.read_clock().value
    dut.device.clear_audit_log(role=role)
    left = dut.device.read_audit_log(start=now - timedelta(minutes=1))
    cleared = [e for e in left if e.kind == AuditKind.LOG_CLEARED]
    check.measure(Msg("synthesized history cleared as {role}",
                      role=role), Msg("{n} log_cleared entry", n=len(cleared)), passed=True,
                  note=Msg("informative; logged by {describe}", describe=describe(cleared)))


def _newest(entries: list[AuditEntry]) -> AuditEntry | None:
    timed = [e for e in entries if e.time is not None]
    return timed[-1] if timed else None


def _oldest_after(dut: Any, start: datetime, end: datetime) -> AuditEntry | None:
    """The log holds less than the year: the oldest entry, found month by month (bounded reads, not a year)."""
    month = timedelta(days=30)
    t = start
    while t < end:
        entries = [e for e in dut.device.read_audit_log(start=t, end=min(t + month, end)) if e.time is not None]
        if entries:
            return entries[0]
        t += month
    return None
