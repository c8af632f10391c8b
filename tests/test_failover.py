"""Channel failover and buffering (cl. 85, 84, 71, 83, 61) end to end, as a user runs them: the
built-in simulated concentrator rig passes both suites, and every concentrator defect fails the
check and clause its catalogue entry names."""

from __future__ import annotations

import json

import pytest
from conftest import CONCENTRATOR_DEFECTS_GROUP, ROOT, checks_of, run_cli, verdicts_of

from harness.simulators.defects import CONCENTRATOR_DEFECTS

RIG = str(ROOT / "rigs" / "sim-concentrator.yaml")
UPLINK_CLAUSES = ["61", "71", "83", "84", "85"]






@pytest.mark.slow
def test_golden_concentrator_certifies(tmp_path):
    out = tmp_path / "out"
    res = run_cli("certify", RIG, "--out", str(out), "--suite", "failover", "--suite", "buffering")
    assert res.returncode == 0, res.stdout + res.stderr
    dc = verdicts_of(out)["duts"]["dc"]
    assert dc["kind"] == "data_concentrator"
    for clause in UPLINK_CLAUSES:
        assert dc["clauses"][clause]["verdict"] == "PASS", dc["clauses"][clause]
    checks = checks_of(out)
    assert {"KZ-85-01", "KZ-85-02", "KZ-84-01", "KZ-84-02", "KZ-71-01", "KZ-83-01", "KZ-83-02",
            "KZ-61-01"} <= set(checks)
    switch = next(m for m in checks["KZ-85-01"]["measurements"] if m["name"].startswith("switchover"))
    assert switch["passed"] and switch["measured"] < 3.25
    faults = [json.loads(line) for line in (out / "faults.jsonl").read_text().splitlines()]
    assert {f["kind"] for f in faults if f["phase"] == "begin"} >= {"link", "power"}
    assert all(f.get("phase") in ("begin", "end") for f in faults)
    assert checks["KZ-71-01"]["charts"], "the failover timeline is kept for the report"


@pytest.mark.slow
@pytest.mark.xdist_group(CONCENTRATOR_DEFECTS_GROUP)
@pytest.mark.parametrize("defect", sorted(CONCENTRATOR_DEFECTS))
def test_concentrator_defect_fails_its_check(concentrator_defects, defect):
    d = CONCENTRATOR_DEFECTS[defect]
    run = concentrator_defects.run(d)
    assert [c["id"] for c in run.clause["checks"] if c["verdict"] == "FAIL"] == [d.expect]


def test_every_uplink_check_has_a_defect():
    expected = {"KZ-85-01", "KZ-85-02", "KZ-84-01", "KZ-84-02", "KZ-71-01", "KZ-83-01", "KZ-83-02", "KZ-61-01"}
    assert {d.expect for d in CONCENTRATOR_DEFECTS.values()} == expected
