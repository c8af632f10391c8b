"""Clause verdicts are derived from checks and never PASS by default."""

from __future__ import annotations

import pytest

from harness.reporting.aggregate import aggregate, clause_verdict
from harness.reporting.records import Check, CheckFailed, CheckRecord
from harness.verdicts import Verdict

P, F, INC, NA = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.NOT_APPLICABLE


@pytest.mark.parametrize(("checks", "clause"), [
    ([], Verdict.NOT_TESTED), ([P, P], P), ([P, F, INC], F), ([P, INC], INC), ([NA, NA], NA), ([NA, P], P),
])
def test_clause_rules(checks, clause):
    assert clause_verdict(checks) == clause


def _rec(check_id: str, verdict: Verdict, dut: str = "m") -> CheckRecord:
    return CheckRecord(id=check_id, title="t", suite="s", clauses=[check_id.split("-")[1]], dut=dut, verdict=verdict)


def test_deselected_checks_make_the_run_not_certification_grade():
    out = aggregate([_rec("KZ-95-01", P)], {"m": [("KZ-95-07", ["95"])]}, {"m": {"model": "X"}})
    assert out["certification_grade"] is False
    clause = out["duts"]["m"]["clauses"]["95"]
    assert clause["verdict"] == "PASS" and clause["complete"] is False and clause["not_run"] == ["KZ-95-07"]
    assert out["duts"]["m"]["model"] == "X"


def test_only_deselected_clause_is_not_tested_and_nothing_run_is_not_a_pass():
    out = aggregate([], {"m": [("KZ-95-07", ["95"])]}, {"m": {}})
    assert out["duts"]["m"]["clauses"]["95"]["verdict"] == "NOT TESTED"
    assert out["verdict"] == "NOT TESTED"


def test_any_failure_fails_the_run():
    out = aggregate([_rec("KZ-95-01", P), _rec("KZ-95-02", F), _rec("KZ-95-01", P, dut="n")], {}, {})
    assert out["verdict"] == "FAIL" and out["duts"]["n"]["verdict"] == "PASS"
    assert out["certification_grade"] is True


def test_check_without_measurement_cannot_pass():
    c = Check("KZ-95-01", "t", "s", ["95"], "m")
    with pytest.raises(CheckFailed, match="no measurement"):
        c.require()
    c.at_most("x", 2.0, 1.0, unit="Wh")
    with pytest.raises(CheckFailed, match=r"x: 2\.0 Wh"):
        c.require()
