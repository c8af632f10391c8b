"""cl. 97 event journals, what is recorded and transmitted: each event the bench can provoke is
logged once with the right kind and time, a power cut is logged and loses nothing, and the
journal is readable over the device's interface."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from harness.conformance.bounds import EVENT_TIMESTAMP
from harness.conformance.journal.provoke import (
    POWER_KINDS,
    declared_kinds,
    device_clock,
    journal_of,
    key,
    new_entries,
    one_new_entry,
    provocations,
    provoke_and_judge,
    provoke_config_change,
)
from harness.conformance.power import power_switch
from harness.events import EventKind
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("electricity_meter", "heat_meter")


@pytest.mark.check("KZ-97-01", "trigger matrix: each declared event the bench can provoke (clock set, "
                   "configuration write, tamper input) is logged once, with its kind and a timestamp within the "
                   "declared tolerance")
def test_trigger_matrix(dut, check):
    journal_of(dut)
    matrix, cannot = provocations(dut)
    device_clock(dut)  # no clock, no judgement of timestamps
    for p in matrix:
        provoke_and_judge(dut, check, p)
    for kind, why in cannot.items():
        check.measure(Msg("{value}: not provoked",
                          value=kind.value), why, passed=True, note=Msg("INCONCLUSIVE for this kind"))
    check.require()
    if cannot:
        raise Inconclusive(Msg("declared kinds the bench cannot provoke: {kinds}", kinds=Msg.joined("; ", (
            Msg("{kind} ({why})", kind=k.value, why=why) for k, why in cannot.items()))))
    if not matrix:
        raise Inconclusive(Msg("no declared event kind other than power events could be provoked"))


@pytest.mark.destructive
@pytest.mark.check("KZ-97-02", "a power cut logs exactly one power-down and one power-up, stamped within the "
                   "declared tolerance of the cut and of the return of power")
def test_power_events(dut, check):
    journal = journal_of(dut)
    tol = EVENT_TIMESTAMP.limit(check, journal.timestamp_tolerance_s)
    power = power_switch(dut)
    kinds = declared_kinds(dut)
    for kind in POWER_KINDS:
        check.measure(Msg("{value} code declared", value=kind.value), kind in kinds, passed=kind in kinds,
                      note=Msg("a meter's journal must record loss and return of supply (cl. 63-64, 97)"))
    check.require()
    before = dut.device.read_journal()
    c0 = device_clock(dut)
    t_off, t_on, ready = power.cut(dut.spec.power.off_time_s)
    c1 = dut.device.read_clock()
    new = new_entries(before, dut.device.read_journal())
    at_cut = c0.value + timedelta(seconds=t_off - c0.t_received)
    one_new_entry(check, "power cut", EventKind.POWER_DOWN, new, c0.value, at_cut, tol)
    at_on = c1.value - timedelta(seconds=c1.t_received - t_on)
    one_new_entry(check, Msg("power return"), EventKind.POWER_UP, new, at_on, c1.value, tol)
    downs = [e.sequence for e in new if e.kind == EventKind.POWER_DOWN]
    ups = [e.sequence for e in new if e.kind == EventKind.POWER_UP]
    if len(downs) == 1 and len(ups) == 1:
        check.measure(Msg("power-down logged before power-up"), downs[0] < ups[0], passed=downs[0] < ups[0],
                      note=Msg("sequence {value} and {value2}; ready {ready:.2f} s after power-on", value=downs[0],
                               value2=ups[0], ready=ready))
    check.require()


@pytest.mark.destructive
@pytest.mark.check("KZ-97-03", "every journal entry survives a power cut unchanged (non-volatile storage)")
def test_entries_survive_power_cut(dut, check):
    journal = journal_of(dut)
    power = power_switch(dut)
    provoke_config_change(dut)  # make sure there is something recent to lose
    before = dut.device.read_journal()
    if not before:
        raise Inconclusive(Msg("the journal is empty and the bench could not provoke an entry to keep"))
    power.cut(dut.spec.power.off_time_s)
    after = dut.device.read_journal()
    added = len(new_entries(before, after))
    may_drop = max(0, len(before) + added - journal.capacity) if journal.when_full == "overwrite_oldest" else 0
    kept = {key(e) for e in after}
    lost = [e for e in before if key(e) not in kept]
    check.at_most(Msg("entries lost across the cut"), len(lost) - may_drop, 0,
                  note=Msg("{n} before, {n2} after ({added} new, {may_drop} may be overwritten)", n=len(before),
                           n2=len(after), added=added, may_drop=may_drop)
                       + (Msg("; first lost: #{sequence} {kind}", sequence=lost[0].sequence,
                              kind=lost[0].kind or lost[0].code) if lost else ""))
    check.require()


@pytest.mark.check("KZ-97-07", "the journal is transmitted over the device's communication interface: every "
                   "entry reads back and decodes to a declared event kind")
def test_journal_readable(dut, check):
    journal = journal_of(dut)
    provoke_config_change(dut)
    t0 = time.monotonic()
    entries = dut.device.read_journal()
    took = time.monotonic() - t0
    check.at_least(Msg("entries transmitted"), len(entries), 1, note=Msg("read in {took:.3f} s", took=took))
    check.at_most(Msg("entries held"), len(entries), journal.capacity, note=Msg("declared capacity"))
    unknown = sorted({e.code for e in entries if e.kind is None})
    check.equal(Msg("entries with an undeclared event code"), len(unknown), 0,
                note=Msg("codes {unknown}", unknown=unknown) if unknown else Msg("every code maps to a canonical kind"))
    check.require()
