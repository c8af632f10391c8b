"""Generic, not tuned: a meter with another register map, data types, tables, clock encoding,
tariff count and time zone certifies with the same suites — and its defects are still caught."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATA, VARIANT_GOLDEN_GROUP, run_cli


@pytest.mark.slow
@pytest.mark.xdist_group(VARIANT_GOLDEN_GROUP)
def test_variant_meter_certifies(variant_golden_run):
    out = variant_golden_run.out  # every check (conftest: variant_golden_run)
    variant_golden_run.passed()
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert verdicts["duts"]["meter"]["model"] == "VARIANT-EM2"
    assert verdicts["duts"]["meter"]["clauses"]["95"]["verdict"] == "PASS"


def test_variant_meter_defect_is_caught(tmp_path):
    out = tmp_path / "out"
    res = run_cli("certify", str(DATA / "variant-rig.yaml"), "--out", str(out), "--suite", "tariffs",
                  "--defect", "tariff_stuck")
    assert res.returncode == 1
    checks = {json.loads(line)["id"]: json.loads(line) for line in (out / "checks.jsonl").read_text().splitlines()}
    assert checks["KZ-95-06"]["verdict"] == "FAIL"
