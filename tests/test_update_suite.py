"""The `update` suite (cl. 70) end to end, as a user runs it: the built-in simulated controller passes
every check, and each seeded update defect fails the check its catalogue entry names — by the
measurement that shows that defect's symptom, and no other check.

Cost: three certify runs (~50 s together, in parallel under xdist); the golden one is read from the controller
rig's golden certification (conftest: controller_golden_run). The seven defects that need no
power cut share one run (a process start is most of such a run); each failing check is tied to its
defect by the name of the measurement that fails. ``update_power_loss_bricks`` runs alone, on KZ-70-06.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import CONTROLLER_GOLDEN_GROUP, ROOT, checks_of, run_cli
from defect_rigs import not_passing, rig_per_defect

from harness.simulators.defects import CONTROLLER_DEFECTS

RIG = str(ROOT / "rigs" / "sim-controller.yaml")
UPDATE_CHECKS = [f"KZ-70-0{i}" for i in range(1, 9)]
# the measurement (by a word of its name) in which each defect shows; nothing else may fail
SYMPTOM = {
    "update_accepts_unsigned": "unsigned",
    "update_accepts_corrupted": "corrupted",
    "update_no_auto_rollback": "automatic rollback",
    "update_rollback_loses_config": "after the rollback",
    "update_power_loss_bricks": "during install",
    "update_not_logged": "harness's account",  # the system's own "new version available" entry still names it
    "update_accepts_downgrade": "below",
    "update_no_indication": "new version indicated",
    "update_config_write_ignored": "read back after the write",
}
POWER_DEFECTS = ["update_power_loss_bricks"]  # its check cuts power three times: a run of its own
# Shown by an absence: its check waits its whole bound (10 request timeouts, 20 s on the built-in rig) for an
# indication that never comes — a run of its own on a copy of the rig with short request timeouts.
ABSENCE_DEFECTS = ["update_no_indication"]
# Fails the same check as update_rollback_loses_config (KZ-70-05), on two measurements: a run of its own.
SAME_CHECK_DEFECTS = ["update_config_write_ignored"]




def _certify(out: Path, *args: str):
    return run_cli("certify", RIG, "--out", str(out), "--suite", "update", "--reruns", "0", *args)


@pytest.mark.slow
@pytest.mark.xdist_group(CONTROLLER_GOLDEN_GROUP)
def test_golden_controller_passes_the_update_suite(controller_golden_run):
    """Read from the golden certification of the whole rig (shared with test_controller_rig): its update suite is
    what `--suite update` runs, and the suite's faults are those injected while its checks ran."""
    out = controller_golden_run.out
    controller_golden_run.passed()
    checks = controller_golden_run.checks("update")
    assert sorted(checks) == UPDATE_CHECKS
    assert all(c["verdict"] == "PASS" for c in checks.values()), {k: c["reason"] for k, c in checks.items()}
    assert json.loads((out / "verdicts.json").read_text())["duts"]["plc"]["clauses"]["70"]["verdict"] == "PASS"
    rollback = next(m for m in checks["KZ-70-04"]["measurements"] if m["name"] == "automatic rollback after Activate")
    assert rollback["passed"] and rollback["measured"] <= 3.0, rollback  # within the declared health_check_s
    assert checks["KZ-70-04"]["charts"], "the activation timeline is kept for the report"
    faults = controller_golden_run.faults_during(checks)
    forged = {f["what"] for f in faults if f.get("kind") == "firmware" and f["phase"] == "begin"}
    assert forged == {"unsigned", "wrongly_signed", "truncated", "corrupted"}, faults
    assert sum(1 for f in faults if f.get("kind") == "power" and f["phase"] == "begin") == 3
    assert sorted(p.name for p in (out / "firmware" / "plc").iterdir()) == [
        "pc1-2.2.0-corrupted.img", "pc1-2.2.0-truncated.img", "pc1-2.2.0-unsigned.img",
        "pc1-2.2.0-wrongly_signed.img"]


def _fails_only_by_symptom(checks: dict[str, dict], defects: list[str]) -> None:
    expected = {CONTROLLER_DEFECTS[d].expect: d for d in defects}
    failed = {k for k, c in checks.items() if c["verdict"] != "PASS"}
    assert failed == set(expected), {k: checks[k]["reason"] for k in failed | set(expected)}
    for check_id, defect in expected.items():
        assert checks[check_id]["verdict"] == "FAIL", checks[check_id]
        wrong = [m["name"] for m in checks[check_id]["measurements"]
                 if not m["passed"] and SYMPTOM[defect] not in m["name"]]
        assert not wrong, f"{check_id} under {defect} failed on {wrong}"


@pytest.mark.slow
def test_defects_without_power_cuts_fail_exactly_their_checks(tmp_path):
    defects = sorted(set(SYMPTOM) - set(POWER_DEFECTS) - set(ABSENCE_DEFECTS) - set(SAME_CHECK_DEFECTS))
    out = tmp_path / "out"
    checks_run = [c for c in UPDATE_CHECKS if c not in {CONTROLLER_DEFECTS[d].expect for d in POWER_DEFECTS}]
    res = _certify(out, *(a for d in defects for a in ("--defect", d)),
                   *(a for c in checks_run for a in ("--check", c)))
    assert res.returncode == 1, res.stdout + res.stderr
    _fails_only_by_symptom(checks_of(out), defects)


@pytest.mark.slow
@pytest.mark.parametrize("defect", POWER_DEFECTS)
def test_power_loss_defect_fails_its_check(tmp_path, defect):
    out = tmp_path / "out"
    res = _certify(out, "--defect", defect, "--check", CONTROLLER_DEFECTS[defect].expect)
    assert res.returncode == 1, res.stdout + res.stderr
    checks = checks_of(out)
    _fails_only_by_symptom(checks, [defect])
    bricked = next(m for m in checks[CONTROLLER_DEFECTS[defect].expect]["measurements"] if not m["passed"])
    assert bricked["measured"] == "0.0.0", bricked


def test_every_update_defect_is_covered():
    update = {name for name, d in CONTROLLER_DEFECTS.items() if d.clause == "70"}
    assert update == set(SYMPTOM)
    assert {CONTROLLER_DEFECTS[d].expect for d in update} == set(UPDATE_CHECKS)


@pytest.mark.slow
@pytest.mark.parametrize("defect", ABSENCE_DEFECTS)
def test_absence_defect_fails_its_check(tmp_path, defect):
    """On a rig copy whose request timeout is 0.5 s (the check's wait: 5 s). Alone with the whole suite (by hand,
    one DUT per defect, tests/defect_rigs.py) it fails only its check, as every defect of this file does."""
    rig = rig_per_defect(Path(RIG), [defect], tmp_path / "rig.yaml")
    data = yaml.safe_load(rig.read_text(encoding="utf-8"))
    data["timing"]["request_timeout_s"] = 0.5
    rig.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"
    check_id = CONTROLLER_DEFECTS[defect].expect
    res = run_cli("certify", str(rig), "--out", str(out), "--suite", "update", "--reruns", "0", "--check", check_id)
    assert res.returncode == 1, res.stdout + res.stderr
    assert not_passing(out) == {defect: {check_id: "FAIL"}}
    failed = [m for m in checks_of(out)[check_id]["measurements"] if not m["passed"]]
    assert [m["name"] for m in failed] == [f"{SYMPTOM[defect]} after the transfer"], failed
    assert failed[0]["measured"] in ("", None), failed  # nothing shown: not a wrong version, no version


def test_a_configuration_write_the_device_drops_fails_the_rollback_check(tmp_path):
    """KZ-70-05 compares the kept configuration with the value written, not the one read back after the write: a
    write the updated firmware acknowledges and drops would otherwise be "kept" by the rollback."""
    out = tmp_path / "out"
    res = _certify(out, "--defect", "update_config_write_ignored", "--check", "KZ-70-05")
    assert res.returncode == 1, res.stdout + res.stderr
    failed = {m["name"] for m in checks_of(out)["KZ-70-05"]["measurements"] if not m["passed"]}
    assert any("read back after the write" in n for n in failed) and any("after the rollback" in n for n in failed)


@pytest.mark.slow
def test_a_downgrade_below_the_minimum_fails_even_when_the_profile_allows_it(tmp_path):
    """`below_min_version: allow` is no excuse: the golden controller, told by its profile to allow it, installs the
    image below the minimum — and KZ-70-07 FAILs."""
    profile = yaml.safe_load((ROOT / "device_profiles" / "tek-sim-pc1.yaml").read_text())
    profile["opcua"]["update"]["below_min_version"] = "allow"
    profile.pop("documentation", None)
    (tmp_path / "pc1.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    rig = Path(RIG).read_text().replace("../device_profiles/tek-sim-pc1.yaml", str(tmp_path / "pc1.yaml"))
    (tmp_path / "rig.yaml").write_text(rig)
    out = tmp_path / "out"
    res = run_cli("certify", str(tmp_path / "rig.yaml"), "--out", str(out), "--check", "KZ-70-07", "--reruns", "0")
    assert res.returncode == 1, res.stdout + res.stderr
    record = checks_of(out)["KZ-70-07"]
    assert record["verdict"] == "FAIL" and "refused" in record["reason"] and "allow" in record["reason"], record
