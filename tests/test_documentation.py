"""The documentation suite (cl. 50, 58, 59, 72, 79, 87, 93): the date logic, the model and its
file-relative paths, the built-in evidence, and two certifications through the CLI — the golden
meter passes every documentary check, a rig with lapsed papers fails each check on its own lapse."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.config import ConfigError, load_profile, load_rig
from harness.config.documentation import Documentation
from harness.conformance.documentation.applicability import certificate_subjects, is_instrument, technical_kinds
from harness.conformance.documentation.evidence import (
    add_months,
    in_force,
    run_date,
    verification_due,
    verification_valid,
)
from harness.resources import builtin_profile, builtin_rig
from tests.conftest import DATA, ROOT, run_cli

LAPSED_RIG = DATA / "documentation" / "rig-lapsed.yaml"
CHECKS = {"KZ-50-01": ["50", "87"], "KZ-58-01": ["58"], "KZ-59-01": ["59"], "KZ-72-01": ["72"],
          "KZ-79-01": ["79"], "KZ-87-01": ["87", "50"], "KZ-93-01": ["93"]}
CLAUSES = ["50", "58", "59", "72", "79", "87", "93"]


# ---- the date logic -----------------------------------------------------------------------------
@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap year: clamped to the 29th
    (date(2023, 1, 31), 1, date(2023, 2, 28)),
    (date(2026, 3, 31), 1, date(2026, 4, 30)),
    (date(2025, 12, 15), 1, date(2026, 1, 15)),  # across the year
    (date(2026, 3, 1), 96, date(2034, 3, 1)),
    (date(2024, 2, 29), 12, date(2025, 2, 28)),
    (date(2024, 2, 29), 48, date(2028, 2, 29)),
])
def test_add_months_clamps_the_day(day, months, expected):
    assert add_months(day, months) == expected


def test_verification_holds_up_to_the_day_before_it_falls_due():
    last, due = date(2026, 1, 31), date(2026, 2, 28)
    assert verification_due(last, 1) == due
    assert verification_valid(last, 1, last)  # the day of the verification itself
    assert verification_valid(last, 1, due - timedelta(days=1))  # the last valid day passes
    assert not verification_valid(last, 1, due)  # on the due date a new verification is needed
    assert not verification_valid(last, 1, last - timedelta(days=1))  # dated in the future


def test_a_certificate_is_in_force_through_its_last_day():
    issued, until = date(2026, 2, 1), date(2034, 2, 9)
    assert in_force(issued, until, until)
    assert not in_force(issued, until, until + timedelta(days=1))
    assert not in_force(issued, until, issued - timedelta(days=1))
    assert in_force(issued, None, date(2099, 1, 1))  # unlimited type approval


# ---- the model ----------------------------------------------------------------------------------
def test_rig_fields_replace_the_profiles_field_by_field():
    profile_doc = Documentation.model_validate({
        "verification": {"last": "2026-03-01", "interval_months": 96, "certificate": "A", "by": "lab"},
        "security_certificate": {"number": "S", "issuer": "x", "issued": "2026-01-01", "valid_until": "2030-01-01"},
        "state_registry": {"number": "KZ.1", "type_name": "T", "entered": "2026-01-01"}})
    rig_doc = Documentation.model_validate({
        "verification": {"last": "2026-06-01", "interval_months": 12, "certificate": "B", "by": "lab"},
        "state_registry": None})
    merged = profile_doc.overridden_by(rig_doc)
    assert merged.verification.certificate == "B"  # declared in the rig: the rig's
    assert merged.security_certificate.number == "S"  # not declared in the rig: the profile's
    assert merged.state_registry is None  # an explicit null withdraws it
    assert profile_doc.overridden_by(None) is profile_doc


def test_document_paths_are_relative_to_the_declaring_file():
    loaded = load_rig(LAPSED_RIG)
    profile_docs = loaded.profiles["meter"].documentation.documents
    rig_docs = loaded.dut("meter").documentation.documents
    assert profile_docs[0].path == ROOT / "device_profiles" / "docs" / "tek-sim-em4-operating-manual.md"
    assert rig_docs[0].path == LAPSED_RIG.parent / "technical-description-altered.md"
    assert rig_docs[0].file == "technical-description-altered.md"  # kept as written, for the evidence
    assert rig_docs[1].path == LAPSED_RIG.parent / "tek-sim-em4-metrological-description.md"  # a copy: documents
    # lie in the declaring file's folder (tests/test_documentation_paths.py)


def test_malformed_declarations_name_file_line_and_field(tmp_path):
    text = builtin_profile("tek-sim-em4.yaml").read_text()
    bad = text.replace("    valid_until: 2034-02-09", "    valid_until: 2019-02-09").replace(
        "sha256: ", "sha256: zz", 1)
    path = tmp_path / "p.yaml"
    path.write_text(bad)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    problems = {p.field: p for p in err.value.problems}
    assert "valid_until is before issued" in problems["documentation.security_certificate"].message
    sha = problems["documentation.documents.0.sha256"]
    assert sha.line == bad.splitlines().index(next(x for x in bad.splitlines() if "sha256: zz" in x)) + 1


@pytest.mark.parametrize("profile", ["tek-sim-em4.yaml", "tek-sim-hm1.yaml", "tek-sim-amr.yaml"])
def test_builtin_profiles_pin_their_documents(profile):
    """Editing a shipped document without updating its sha256 in the profile fails here, not in a lab."""
    loaded = load_profile(builtin_profile(profile))
    doc, instrument = loaded.documentation, loaded.kind.value != "amr_server"
    kinds = {d.kind.value for d in doc.documents}
    assert {"operating_manual", "technical_description"} <= kinds
    assert ("metrological_description" in kinds) == instrument  # AMR software has no metrological part (cl. 93)
    for d in doc.documents:
        assert d.path.is_relative_to(builtin_profile(profile).parent / "docs")
        assert hashlib.sha256(d.path.read_bytes()).hexdigest() == d.sha256, d.file
    today = run_date()
    if instrument:
        assert verification_due(doc.verification.last, doc.verification.interval_months) > today + timedelta(days=365)
    else:  # cl. 50, 87 are N/A for software (applicability.py): it declares neither
        assert doc.verification is None and doc.state_registry is None
    assert doc.security_certificate.valid_until > today + timedelta(days=365)


def test_an_amr_server_is_documented_as_software():
    """cl. 50/87 are a measuring instrument's, cl. 58-59 ask an AMR server for its software's certificate, cl. 93
    for its technical documents (no metrological part); a meter keeps every requirement (applicability.py)."""
    amr = SimpleNamespace(profile=load_profile(builtin_profile("tek-sim-amr.yaml")))
    meter = SimpleNamespace(profile=load_profile(builtin_profile("tek-sim-em4.yaml")))
    assert (is_instrument(amr), is_instrument(meter)) == (False, True)
    assert certificate_subjects(amr) == ("software",) and certificate_subjects(meter) == ("instrument", "software")
    assert technical_kinds(amr) == ("technical_description",)
    assert technical_kinds(meter) == ("technical_description", "metrological_description")


# ---- certification through the CLI ------------------------------------------------------------
def _certify(out: Path, *rig: str) -> tuple[int, dict, dict[str, dict]]:
    res = run_cli("certify", *rig, "--suite", "documentation", "--out", str(out))
    assert "Traceback" not in res.stderr, res.stderr
    verdicts = json.loads((out / "verdicts.json").read_text())
    checks = {r["id"]: r for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())}
    return res.returncode, verdicts, checks


def test_golden_meter_passes_the_documentation_suite(tmp_path):
    days = {run_date()}
    code, verdicts, checks = _certify(tmp_path / "out", str(builtin_rig()))
    days.add(run_date())
    assert code == 0, checks
    assert sorted(checks) == sorted(CHECKS)
    for check_id, record in checks.items():
        assert record["verdict"] == "PASS" and record["kind"] == "documentary", record
        assert record["clauses"] == CHECKS[check_id] and record["measurements"]
    clauses = verdicts["duts"]["meter"]["clauses"]
    for clause in CLAUSES:
        assert clauses[clause]["verdict"] == "PASS" and clauses[clause]["verdict_kind"] == "documentary"
    # the evidence says which day it was judged against: the UTC date of the run
    assert checks["KZ-79-01"]["measurements"][0]["limit"] in {f"in force on {d} (run date, UTC)" for d in days}


# Its module-scoped fixtures are made once per worker: one group keeps the module on one worker (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("documentation")


@pytest.fixture(scope="module")
def lapsed(tmp_path_factory) -> tuple[int, dict, dict[str, dict]]:
    """One certification of the rig with lapsed papers: every check fails on its own lapse."""
    return _certify(tmp_path_factory.mktemp("lapsed") / "out", str(LAPSED_RIG))


def test_lapsed_papers_fail_the_run(lapsed):
    code, verdicts, checks = lapsed
    assert code == 1
    assert all(c["kind"] == "documentary" for c in checks.values())
    clauses = verdicts["duts"]["meter"]["clauses"]
    assert {c: clauses[c]["verdict"] for c in CLAUSES} == {
        "50": "FAIL", "58": "PASS", "59": "FAIL", "72": "FAIL", "79": "FAIL", "87": "FAIL", "93": "FAIL"}


def test_missing_state_registry_fails_cl_50(lapsed):
    record = lapsed[2]["KZ-50-01"]
    assert record["verdict"] == "FAIL"
    assert "documentation.state_registry: not declared" in record["reason"]


def test_expired_verification_fails_cl_87(lapsed):
    record = lapsed[2]["KZ-87-01"]
    assert record["verdict"] == "FAIL"
    assert "next verification due: 2024-03-01" in record["reason"]
    assert "declared in the rig" in record["measurements"][0]["note"]


def test_expired_security_certificate_fails_cl_79(lapsed):
    record = lapsed[2]["KZ-79-01"]
    assert record["verdict"] == "FAIL" and "2020-01-10 … 2023-01-09" in record["reason"]


def test_missing_operating_manual_fails_cl_72(lapsed):
    record = lapsed[2]["KZ-72-01"]
    assert record["verdict"] == "FAIL" and "kind: operating_manual" in record["reason"]


def test_changed_document_fails_cl_93(lapsed):
    record = lapsed[2]["KZ-93-01"]
    assert record["verdict"] == "FAIL" and "sha256" in record["reason"]
    failed = [m for m in record["measurements"] if not m["passed"]]
    assert [m["name"] for m in failed] == ["technical_description “TEK-SIM-EM4 technical description (altered "
                                           "copy)” sha256"]


def test_software_certificate_is_required_by_cl_59(lapsed):
    assert lapsed[2]["KZ-58-01"]["verdict"] == "PASS"  # the instrument's certificate is in force
    record = lapsed[2]["KZ-59-01"]
    assert record["verdict"] == "FAIL" and "subject: software" in record["reason"]


def test_an_expired_instrument_certificate_fails_cl_58(tmp_path):
    """KZ-58-01 can fail: the lapsed rig with its instrument's conformity certificate expired (bad documentation)."""
    indent = "\n           "
    text = LAPSED_RIG.read_text().replace("../../../device_profiles/", f"{ROOT}/device_profiles/").replace(
        f"issued: 2026-02-01,{indent}valid_until: 2036-01-31", f"issued: 2016-02-01,{indent}valid_until: 2021-01-31")
    assert "valid_until: 2021-01-31" in text
    (tmp_path / "rig.yaml").write_text(text)
    res = run_cli("certify", str(tmp_path / "rig.yaml"), "--check", "KZ-58-01", "--out", str(tmp_path / "out"))
    assert res.returncode == 1, res.stdout + res.stderr
    record = json.loads((tmp_path / "out" / "checks.jsonl").read_text().splitlines()[0])
    assert record["id"] == "KZ-58-01" and record["verdict"] == "FAIL" and "2021-01-31" in record["reason"], record
