"""cl. 69 control-system event logging end to end, as a user runs it: the built-in simulated controller
passes every check of the `journal` suite for controllers, and each log_* defect fails the check its
catalogue entry names (run alone, as tests/test_failover.py does: a whole-suite run per defect costs
twice as much; with the whole suite each defect still fails only its own check, checked by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CONTROLLER_DEFECTS_GROUP, CONTROLLER_GOLDEN_GROUP, ROOT, checks_of, run_cli

from harness.fault_injection.time_control import WallTime
from harness.simulators.defects import CONTROLLER_DEFECTS
from harness.verdicts import Inconclusive

RIG = str(ROOT / "rigs" / "sim-controller.yaml")
CHECKS = {"KZ-69-01", "KZ-69-02", "KZ-69-03", "KZ-69-04"}
LOG_DEFECTS = {name: d for name, d in CONTROLLER_DEFECTS.items() if d.clause == "69"}


def _certify(out: Path, *extra: str):
    return run_cli("certify", RIG, "--out", str(out), "--suite", "journal", "--reruns", "0", *extra)


def _clause(out: Path) -> dict:
    return json.loads((out / "verdicts.json").read_text())["duts"]["plc"]["clauses"]["69"]




@pytest.mark.slow
@pytest.mark.xdist_group(CONTROLLER_GOLDEN_GROUP)
def test_golden_controller_logs_as_cl69_requires(controller_golden_run):
    """Read from the golden certification of the controller rig (conftest: controller_golden_run): its journal suite
    is what `--suite journal` runs, and the suite's faults are those injected while its checks ran."""
    out = controller_golden_run.out
    controller_golden_run.passed()
    clause = _clause(out)
    assert clause["verdict"] == "PASS", clause
    checks = controller_golden_run.checks("journal")
    assert set(checks) == CHECKS
    assert all(c["verdict"] == "PASS" for c in checks.values()), {k: c["verdict"] for k, c in checks.items()}
    matrix = [m["name"] for m in checks["KZ-69-01"]["measurements"]]
    for kind in ("control_action", "login_success", "login_failure", "settings_change", "alarm"):
        assert any(name.endswith(f"new {kind} entries") for name in matrix), f"{kind} not provoked: {matrix}"
    held = next(m for m in checks["KZ-69-04"]["measurements"] if m["name"] == "history held")
    assert held["measured"] >= 365
    faults = controller_golden_run.faults_during(checks)
    assert {f["kind"] for f in faults if f["phase"] == "begin"} >= {"alarm", "power"}


@pytest.mark.slow
@pytest.mark.xdist_group(CONTROLLER_DEFECTS_GROUP)
@pytest.mark.parametrize("defect", sorted(LOG_DEFECTS))
def test_log_defect_fails_exactly_its_check(controller_defects, defect):
    d = LOG_DEFECTS[defect]
    run = controller_defects.run(d)  # its DUT's check FAILed on cl. 69
    assert [c["id"] for c in run.clause["checks"] if c["verdict"] == "FAIL"] == [d.expect]


def test_log_defects_cover_the_behavioural_checks():
    """Every check has its defect; KZ-69-04's (log_capacity_short) keeps less than the declared capacity, which the
    declaration alone cannot show: only the synthesized year does."""
    assert {d.expect for d in LOG_DEFECTS.values()} == CHECKS


def test_real_device_cannot_synthesize_history():
    with pytest.raises(Inconclusive, match="synthesize"):
        WallTime(max_wait_s=1).synthesize_events(366, 100)


def test_no_declared_clear_is_inconclusive_not_a_pass_with_nothing_tried(tmp_path):
    """KZ-69-02 with no clear method or log object declared tries nothing: INCONCLUSIVE, never PASS."""
    import yaml

    profile = yaml.safe_load((ROOT / "device_profiles" / "tek-sim-pc1.yaml").read_text())
    del profile["opcua"]["audit_log"]["clear"]
    profile.pop("documentation", None)
    (tmp_path / "pc1.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    rig = Path(RIG).read_text().replace("../device_profiles/tek-sim-pc1.yaml", str(tmp_path / "pc1.yaml"))
    assert str(tmp_path / "pc1.yaml") in rig
    (tmp_path / "rig.yaml").write_text(rig)
    out = tmp_path / "out"
    run_cli("certify", str(tmp_path / "rig.yaml"), "--out", str(out), "--check", "KZ-69-02", "--reruns", "0")
    record = checks_of(out)["KZ-69-02"]
    assert record["verdict"] == "INCONCLUSIVE", record
    assert "audit_log.clear" in record["reason"]
