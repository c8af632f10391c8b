"""No PASS without trying (issue 14): a check that could not provoke or drive what it judges says
INCONCLUSIVE and names the rig setting that would let it, and a bench's limit is never a device's N/A."""

from __future__ import annotations

from pathlib import Path

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
