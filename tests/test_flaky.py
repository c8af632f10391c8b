"""Flake detection: a failing check is re-run up to the rig's `reruns` times; one that passes on a
re-run is FLAKY — INCONCLUSIVE for its clause, never PASS — and a deterministic failure stays FAIL
with every attempt on record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import DATA, ROOT

from harness.reporting.progress import Progress, clock
from harness.reporting.records import CheckRecord


def _run_suite(tmp_path: Path, *extra: str, checks: str = "flaky_checks.py") -> tuple[dict, dict[str, CheckRecord]]:
    out = tmp_path / "out"
    env = {**os.environ, "TEK_FLAKY_DIR": str(tmp_path)}
    suite = DATA / "flaky_suite"  # named so that the harness's own test run does not collect it
    rig = ROOT / "rigs" / "sim-meter.yaml"
    res = subprocess.run([sys.executable, "-m", "pytest", str(suite / checks), "--rig", str(rig),
                          "--harness-out", str(out), "-p", "no:cacheprovider", "--confcutdir", str(suite),
                          "-c", os.devnull, "--rootdir", str(suite), "-q", *extra],
                         capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert (out / "verdicts.json").exists(), res.stdout + res.stderr
    records = {r.id: r for r in (CheckRecord.model_validate_json(line)
                                 for line in (out / "checks.jsonl").read_text().splitlines())}
    return json.loads((out / "verdicts.json").read_text()), records


def test_flaky_check_is_reported_flaky_and_never_pass(tmp_path):
    verdicts, records = _run_suite(tmp_path)
    flaky, always = records["KZ-95-90"], records["KZ-95-91"]
    assert flaky.verdict == "FLAKY"
    assert len(flaky.attempts) == 1 and flaky.attempts[0].verdict == "FAIL"
    assert "re-run" in flaky.reason
    assert [m.name for m in flaky.measurements] == ["attempt", "serial number read"]  # the passing attempt's only
    assert always.verdict == "FAIL" and len(always.attempts) == 2  # rig default reruns: 2 → three attempts
    assert (tmp_path / "always").read_text() == "3"
    clause = verdicts["duts"]["meter"]["clauses"]["95"]
    assert clause["verdict"] == "FAIL"
    assert {c["id"]: c["verdict"] for c in clause["checks"]} == {"KZ-95-90": "FLAKY", "KZ-95-91": "FAIL"}


def test_flaky_alone_makes_the_clause_inconclusive(tmp_path):
    verdicts, records = _run_suite(tmp_path, "--harness-check", "KZ-95-90")
    assert records["KZ-95-90"].verdict == "FLAKY"
    assert verdicts["duts"]["meter"]["clauses"]["95"]["verdict"] == "INCONCLUSIVE"
    assert verdicts["verdict"] == "INCONCLUSIVE"


def test_reruns_zero_reports_the_first_failure(tmp_path):
    _, records = _run_suite(tmp_path, "--harness-reruns", "0")
    assert records["KZ-95-90"].verdict == "FAIL" and records["KZ-95-90"].attempts == []


def test_progress_estimates_what_is_left(capsys):
    p = Progress(total=4)
    p.t0 -= 10.0  # as if two checks took 10 s
    for i in range(2):
        p.finished(CheckRecord(id=f"KZ-95-0{i}", title="t", suite="s", clauses=["95"], dut="meter",
                               verdict="PASS", started=0.0, finished=1.0))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("  [1/4] KZ-95-00")
    assert "0:10 elapsed, ~0:10 left" in lines[1]  # 2 done in 10 s, 2 left
    assert clock(3725) == "1:02:05" and clock(75) == "1:15"


def _run_unjudged(tmp_path: Path, *extra: str) -> tuple[dict, dict[str, CheckRecord]]:
    return _run_suite(tmp_path, *extra, checks="unjudged_checks.py")


def test_a_check_that_measures_nothing_is_inconclusive_never_pass(tmp_path):
    verdicts, records = _run_unjudged(tmp_path, "--harness-check", "KZ-95-92")
    record = records["KZ-95-92"]
    assert record.verdict == "INCONCLUSIVE", record
    assert "nothing measured" in record.reason
    assert verdicts["duts"]["meter"]["clauses"]["95"]["verdict"] == "INCONCLUSIVE"


def test_a_failure_is_not_washed_out_by_a_rerun_that_judges_nothing(tmp_path):
    verdicts, records = _run_unjudged(tmp_path, "--harness-check", "KZ-95-93", "--harness-check", "KZ-95-94")
    for check_id in ("KZ-95-93", "KZ-95-94"):
        record = records[check_id]
        assert record.verdict == "FAIL", record
        assert [a.verdict for a in record.attempts] == ["FAIL"]
        assert "first attempt passes" in record.reason
    assert verdicts["duts"]["meter"]["clauses"]["95"]["verdict"] == "FAIL"
