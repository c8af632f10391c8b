"""No PASS without trying (issue 14): a check that could not provoke or drive what it judges says
INCONCLUSIVE and names the rig setting that would let it, and a bench's limit is never a device's N/A."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import checks_of, run_cli

from harness.resources import builtin_rig


def _rig_variant(tmp_path: Path, old: str, new: str, name: str = "rig.yaml") -> Path:
    """The built-in meter rig with one piece of text replaced (profile paths made absolute)."""
    text = builtin_rig().read_text().replace("../device_profiles/", f"{builtin_rig().parent.parent}/device_profiles/")
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return path


def _run(tmp_path: Path, rig: Path, *args: str) -> dict[str, dict]:
    out = tmp_path / "out"
    res = run_cli("certify", str(rig), "--out", str(out), "--reruns", "0", *args)
    assert res.returncode in (0, 1, 3), res.stdout + res.stderr
    return checks_of(out)


def test_a_register_the_bench_does_not_load_cannot_pass_its_rate(tmp_path):
    rig = _rig_variant(tmp_path, "reactive_import_var: 1200\n      reactive_export_var: 300",
                       "reactive_import_var: 0\n      reactive_export_var: 0")
    rig.write_text(rig.read_text().replace('"3000,500,1200,300"', '"3000,500,0,0"'))
    record = _run(tmp_path, rig, "--defect", "reactive_not_counted", "--check", "KZ-95-02")["KZ-95-02"]
    assert record["verdict"] == "INCONCLUSIVE", record
    assert "reference_load.reactive_import_var" in record["reason"]
    assert "reference_load.reactive_export_var" in record["reason"]
    assert all(m["passed"] for m in record["measurements"])  # no creep, and the active rates are right


def test_tamper_check_with_only_some_inputs_driven_is_inconclusive(monkeypatch):
    """KZ-94-03 judges what the bench drove; a declared tamper kind it could not drive leaves the check
    INCONCLUSIVE (as KZ-97-01 is), not a PASS for every input."""
    from harness.conformance.access_control import test_modbus_access as suite
    from harness.events import EventKind
    from harness.reporting.records import Check
    from harness.verdicts import Inconclusive

    monkeypatch.setattr(suite, "journal_of", lambda dut: object())
    monkeypatch.setattr(suite, "device_clock", lambda dut: None)
    monkeypatch.setattr(suite, "tamper_kinds", lambda dut: [EventKind.COVER_OPEN, EventKind.MAGNETIC_FIELD])
    monkeypatch.setattr(suite, "tamper_provocation", lambda dut, kind: "the rig drives no magnetic_field tamper input"
                        if kind == EventKind.MAGNETIC_FIELD else SimpleNamespace(kind=kind))
    monkeypatch.setattr(suite, "provoke_and_judge", lambda dut, check, p: check.measure(
        f"{p.kind.value}: logged once", 1, passed=True))
    check = Check("KZ-94-03", "t", "access_control", ["94"], "meter")
    with pytest.raises(Inconclusive, match="magnetic_field"):
        suite.test_tamper_inputs_logged(object(), check)
    assert [m.passed for m in check.measurements] == [True, True]  # the cover judged, the field named as untried
