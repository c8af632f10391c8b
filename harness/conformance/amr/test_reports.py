"""cl. 62 reports and their archive: the server's report of each declared kind (electricity, heat) over a period
equals the harness's own sums from the field (consumption.py); a report once archived is returned unchanged later
(its SHA-256 is the evidence) and an attempt to change it is refused, the archive unchanged after it.

The archive is read again after a correction of a reading in its period has been confirmed (cl. 48) — an archive
computed again from the live readings would change — and the correction undone. Archiving adds a record the server
keeps for good (it is what an archive is for): the check is destructive.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterator

import pytest

from harness.config.amr import ReportKind
from harness.conformance.amr.consumption import (
    SampledPeriod,
    equal,
    figure_shown,
    figures,
    in_canonical,
    judge_truth,
    kinds_to_judge,
    meters_of,
    sampled_period,
    total_of,
)
from harness.conformance.amr.field_truth import admin, amr_spec, correction_roles, require_declared, role_session
from harness.devices.amr.api import AmrSession, ConsumptionReport
from harness.reporting.texts import Msg

pytestmark = pytest.mark.dut_kind("amr_server")


def sha256(document: dict[str, object]) -> str:
    """The hash of a report as the server answered it, over its canonical JSON (keys sorted, no spaces): equal
    for the same content however the server lays out its answer."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def judge_report(check, dut, session: AmrSession, period: SampledPeriod, kind: ReportKind,
                 report: ConsumptionReport, label: Msg) -> None:
    """Each field meter of the kind listed, its consumption and the total equal to the harness's own sums of the
    server's readings, each of those readings checked against the field."""
    expected = figures(dut, session, period, kind)
    unit = period.unit(next(iter(expected)))
    listed = {m.meter_id: m for m in report.meters}
    check.measure(Msg("{label}: meters", label=label), ", ".join(sorted(listed)) or Msg("none"),
                  passed=set(listed) == set(expected), limit=", ".join(sorted(expected)))
    judge_truth(check, label, expected)
    for meter, want in expected.items():
        line = listed.get(meter)
        got = None if line is None or line.consumption is None else in_canonical(line.consumption, line.unit)
        check.measure(Msg("{label}: {meter} consumption", label=label, meter=meter),
                      Msg("none") if got is None else got, unit=None if got is None else unit,
                      passed=equal(got, want.consumption), limit=figure_shown(want.consumption, unit))
    total = in_canonical(report.total, report.unit)
    check.measure(Msg("{label}: total", label=label), Msg("unit {unit!r} unknown", unit=report.unit) if total is None
                  else total, unit=None if total is None else unit, passed=equal(total, total_of(expected)),
                  limit=figure_shown(total_of(expected), unit))


@contextlib.contextmanager
def _corrected_in_period(dut, spec, session: AmrSession, period: SampledPeriod, kind: ReportKind) -> Iterator[Msg]:
    """While inside: the last reading of the period of the kind's first meter corrected (proposed and confirmed, cl.
    48), so that an archive computed again from the live readings would differ; the correction undone after. What
    was done, as the measurement's note (nothing, where the profile has no roles to correct with)."""
    roles = correction_roles(spec)
    meter = meters_of(dut, kind)[0]
    inside = [r for r in session.readings(meter, since=period.start) if r.reading_time < period.end]
    if roles is None or not inside:
        yield Msg("no correction made (the profile declares no proposer and confirmer of corrections)")
        return
    target, reason = inside[-1], f"harness KZ-62-07 {secrets.token_hex(3)}: is the archive frozen?"
    with role_session(dut, session, roles[0]) as proposer, role_session(dut, session, roles[1]) as confirmer:
        confirmer.confirm_correction(proposer.propose_correction(target.reading_id, target.value + 1000.0,
                                                                 reason).correction_id)
        try:
            yield Msg("after a confirmed correction of reading {id} of {meter} in its period (undone after)",
                      id=target.reading_id, meter=meter)
        finally:
            confirmer.confirm_correction(proposer.propose_correction(target.reading_id, target.value,
                                                                     f"{reason} undo").correction_id)


@pytest.mark.destructive
@pytest.mark.check("KZ-62-07", "reports: each declared report (electricity, heat) over a period equals the harness's "
                   "own sums from the field; an archived report is returned unchanged later and cannot be altered")
def test_reports_and_archive(dut, check):
    spec = amr_spec(dut)
    require_declared(check, spec.reports, Msg("reports declared"),
                     Msg("electricity and heat reports per period (cl. 62)"))
    kinds = kinds_to_judge(dut, spec.reports)
    session = admin(dut)
    try:
        period = sampled_period(dut, session, spec.timings.poll_interval_s)
        kind = kinds[0]
        archived = session.archive_report(kind.value, period.start, period.end)
        at_archiving = sha256(archived.report.document)
        for each in kinds:  # the live reports, judged while the archived one waits to be read again
            judge_report(check, dut, session, period, each, session.report(each.value, period.start, period.end),
                         Msg("{kind} report of {period}", kind=each.value, period=period.label))
        judge_report(check, dut, session, period, kind, archived.report,
                     Msg("archived {kind} report", kind=kind.value))
        with _corrected_in_period(dut, spec, session, period, kind) as corrected:
            again = sha256(session.archived_report(archived.archive_id).report.document)
        check.measure(Msg("archived report {id} read again: SHA-256", id=archived.archive_id), again,
                      passed=again == at_archiving, limit=Msg("= {sha} (when archived)", sha=at_archiving),
                      note=corrected)
        altered = dict(archived.report.document, total=archived.report.total + 1000.0)
        accepted = session.alter_archived_report(archived.archive_id, altered)
        check.measure(Msg("an attempt to change the archived report"), Msg("accepted") if accepted else
                      Msg("refused"), passed=not accepted, limit=Msg("refused"))
        after = sha256(session.archived_report(archived.archive_id).report.document)
        check.measure(Msg("archived report after the attempt: SHA-256"), after, passed=after == at_archiving,
                      limit=Msg("= {sha} (when archived)", sha=at_archiving))
    finally:
        session.close()
    check.require()
