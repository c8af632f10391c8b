"""From check records to clause verdicts, per DUT, and the run's overall verdict (verdicts.json).

Rules (DESIGN.md): a clause is FAIL if any check failed; INCONCLUSIVE if none failed but one
could not decide; PASS only if every applicable check that ran passed and at least one did;
N/A only if every check was not applicable; NOT TESTED if none ran. Never PASS by default.
A FLAKY check (failed, passed on a re-run) counts as INCONCLUSIVE: a certificate never rests on luck.
A run is certification-grade only when no applicable check was deselected.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from harness.reporting.clauses import CLAUSES, chapter_of
from harness.reporting.records import CheckRecord
from harness.verdicts import Verdict


def clause_verdict(verdicts: Iterable[Verdict]) -> Verdict:
    vs = list(verdicts)
    if not vs:
        return Verdict.NOT_TESTED
    if Verdict.FAIL in vs:
        return Verdict.FAIL
    if Verdict.INCONCLUSIVE in vs or Verdict.FLAKY in vs:
        return Verdict.INCONCLUSIVE
    applicable = [v for v in vs if v != Verdict.NOT_APPLICABLE]
    if not applicable:
        return Verdict.NOT_APPLICABLE
    return Verdict.PASS if all(v == Verdict.PASS for v in applicable) else Verdict.INCONCLUSIVE


def verdict_kind(kinds: Iterable[str]) -> str:
    """measured | documentary | mixed, or none when no check ran: reports keep the two apart."""
    found = set(kinds)
    if not found:
        return "none"
    return found.pop() if len(found) == 1 else "mixed"


def aggregate(records: list[CheckRecord], deselected: dict[str, list[tuple[str, list[str]]]],
              duts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """verdicts.json content. ``deselected``: dut -> [(check id, clauses)] that did not run."""
    by_dut_clause: dict[str, dict[str, list[CheckRecord]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        for clause in rec.clauses:
            by_dut_clause[rec.dut][clause].append(rec)
    out_duts: dict[str, Any] = {}
    overall: list[Verdict] = []
    for dut in sorted(set(duts) | set(by_dut_clause) | set(deselected)):
        clauses: dict[str, Any] = {}
        not_run: dict[str, list[str]] = defaultdict(list)
        for check_id, check_clauses in deselected.get(dut, []):
            for c in check_clauses:
                not_run[c].append(check_id)
        for clause in sorted(set(by_dut_clause[dut]) | set(not_run), key=_clause_key):
            recs = by_dut_clause[dut].get(clause, [])
            verdict = clause_verdict(r.verdict for r in recs)
            clauses[clause] = {
                "chapter": chapter_of(clause),
                "gist": CLAUSES[clause].gist if clause in CLAUSES else "",
                "verdict": verdict.value,
                "complete": not not_run.get(clause),
                "verdict_kind": verdict_kind(r.kind for r in recs),
                "checks": [{"id": r.id, "title": r.title, "verdict": r.verdict.value, "reason": r.reason,
                            "texts": r.texts, "kind": r.kind,
                            "attempts": [a.model_dump(mode="json") for a in r.attempts]}
                           for r in sorted(recs, key=lambda r: r.id)],
                "not_run": sorted(set(not_run.get(clause, []))),
            }
            if recs:
                overall.append(verdict)
        dut_verdicts = [Verdict(c["verdict"]) for c in clauses.values() if c["checks"]]
        out_duts[dut] = {**duts.get(dut, {}), "clauses": clauses,
                         "verdict": clause_verdict(dut_verdicts).value}
    grade = not any(deselected.values())
    return {"certification_grade": grade, "verdict": clause_verdict(overall).value, "duts": out_duts}


def _clause_key(clause: str) -> tuple[int, str]:
    head = clause.split(".")[0]
    return (int(head) if head.isdigit() else 10**6, clause)
