"""Access control of an OPC UA controller (cl. 66, 76, 78) end to end, as a user runs it: the built-in simulated
controller passes every OPC UA check of suite `access_control`, each seeded auth_*/role_* defect fails exactly
the check its catalogue entry names (the later ones shown in one whole-suite run: nothing else fails), and a lab
rig that trusts any client certificate fails KZ-66-03."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_cli
from defect_rigs import not_passing, rig_per_defect

from harness.simulators.defects import CONTROLLER_DEFECTS

RIG = ROOT / "rigs" / "sim-controller.yaml"
OPCUA_CHECKS = ["KZ-66-01", "KZ-66-02", "KZ-66-03", "KZ-76-01", "KZ-76-02", "KZ-76-03", "KZ-78-01"]
ACCESS_DEFECTS = sorted(name for name, d in CONTROLLER_DEFECTS.items() if d.expect in OPCUA_CHECKS)
# Proven by one run of the whole suite over one simulated controller per defect (tests/defect_rigs.py), which
# also shows that nothing else of the suite fails with them; the others by a run of their own check each.
WHOLE_SUITE_DEFECTS = ["auth_trusts_any_certificate", "auth_ignores_password"]


def _certify(rig: Path | str, out: Path, *args: str) -> tuple[int, str, dict, dict[str, dict]]:
    res = run_cli("certify", str(rig), "--out", str(out), "--reruns", "0", *args, timeout=120)
    verdicts = json.loads((out / "verdicts.json").read_text())
    checks = {r["id"]: r for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())}
    return res.returncode, res.stdout + res.stderr, verdicts["duts"]["plc"], checks


def _measurement(record: dict, name: str) -> dict:
    return next(m for m in record["measurements"] if m["name"] == name)


def test_golden_controller_passes_every_opcua_access_check(tmp_path):
    selected = [a for c in OPCUA_CHECKS for a in ("--check", c)]
    code, output, plc, checks = _certify(RIG, tmp_path / "out", "--suite", "access_control", *selected)
    assert code == 0, output
    assert {c: checks[c]["verdict"] for c in OPCUA_CHECKS} == dict.fromkeys(OPCUA_CHECKS, "PASS")
    for clause in ("66", "76", "78"):
        assert plc["clauses"][clause]["verdict"] == "PASS", plc["clauses"][clause]
    assert all(re.search(r"\[SR \d+\.\d+", checks[c]["title"]) for c in OPCUA_CHECKS), "each names its SR"
    # The evidence says how each refusal came: the None guard at CreateSession, not the client's own matching.
    skipped = _measurement(checks["KZ-66-02"], "session over SecurityPolicy None (a client skipping endpoint "
                           "matching)")
    assert skipped["measured"] == "refused at session: BadSecurityPolicyRejected"
    assert _measurement(checks["KZ-66-03"], "secure channel with an untrusted application certificate")[
        "measured"] == "refused at session: BadCertificateUntrusted"
    lock = checks["KZ-76-02"]["measurements"]
    assert [m["measured"] for m in lock[3:6]] == ["refused at activation: BadUserAccessDenied"] * 2 + ["accepted"]
    assert _measurement(checks["KZ-76-02"], "lockout of view1 in the audit log (security_event)")["measured"] >= 1
    matrix = {m["name"]: m["measured"] for m in checks["KZ-78-01"]["measurements"]}
    assert len(matrix) == 3 * 7  # every declared role × every operation of the vocabulary
    assert matrix["viewer: write_setpoint"] == "refused (BadUserAccessDenied), supply_setpoint unchanged"
    assert matrix["operator: firmware"] == "refused (BadUserAccessDenied)"
    assert matrix["administrator: firmware"] == "reached the update logic (BadInvalidState)"
    transcript = (tmp_path / "out" / "transcript.jsonl").read_text()
    assert '"op":"endpoints"' in transcript.replace(" ", "")


@pytest.mark.parametrize("defect", [d for d in ACCESS_DEFECTS if d not in WHOLE_SUITE_DEFECTS])
def test_access_defect_fails_its_check(tmp_path, defect):
    d = CONTROLLER_DEFECTS[defect]
    code, output, plc, checks = _certify(RIG, tmp_path / "out", "--defect", defect, "--check", d.expect)
    assert code == 1, output
    clause = plc["clauses"][d.clause]
    assert clause["verdict"] == "FAIL", clause
    assert [c["id"] for c in clause["checks"] if c["verdict"] == "FAIL"] == [d.expect]
    assert checks[d.expect]["verdict"] == "FAIL"


def test_defects_fail_only_their_check_in_the_whole_suite(tmp_path):
    assert set(WHOLE_SUITE_DEFECTS) <= set(ACCESS_DEFECTS)
    rig = rig_per_defect(RIG, WHOLE_SUITE_DEFECTS, tmp_path / "rig.yaml")
    res = run_cli("certify", str(rig), "--out", str(tmp_path / "out"), "--reruns", "0", "--suite", "access_control",
                  timeout=180)
    assert res.returncode == 1, res.stdout + res.stderr
    assert not_passing(tmp_path / "out") == {d: {CONTROLLER_DEFECTS[d].expect: "FAIL"} for d in WHOLE_SUITE_DEFECTS}
    checks = {(r["dut"], r["id"]): r for r in map(json.loads, (tmp_path / "out" / "checks.jsonl").read_text()
                                                  .splitlines())}
    trust = checks["auth_trusts_any_certificate", "KZ-66-03"]
    assert _measurement(trust, "secure channel with an untrusted application certificate")["measured"] == "accepted"
    assert _measurement(trust, "untrusted certificate as user identity (over a trusted channel)")[
        "measured"] == "accepted"
    password = {m["name"]: m["measured"] for m in checks["auth_ignores_password", "KZ-76-01"]["measurements"]}
    assert password["administrator: wrong password for admin1"] == "accepted"  # the most privileged role's
    assert password["viewer: wrong password for view1"].startswith("refused")  # the lockout's account is checked


def test_a_lab_rig_that_trusts_any_certificate_and_lacks_an_account(tmp_path):
    """Certificate trust broken by the lab, not the device (the device's own is auth_trusts_any_certificate):
    the simulator is told to trust the harness's untrusted certificate too ({pki_dir}, made before launch), as
    a lab that trusts whatever it is given would — KZ-66-03 FAILs. The same rig gives no account for the viewer
    role: the matrix cannot be complete, so KZ-78-01 is INCONCLUSIVE and names the missing credential (one run
    for both: they are independent)."""
    rig = yaml.safe_load(RIG.read_text())
    plc = rig["duts"]["plc"]
    plc["profile"] = str((RIG.parent / plc["profile"]).resolve())
    del plc["credentials"]["viewer"]
    command = plc["launch"]["command"]
    at = command.index("--trust") + 2
    plc["launch"]["command"] = [*command[:at], "--trust", "{pki_dir}/untrusted-client.der",
                                *command[at:]]
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(rig), encoding="utf-8")
    code, output, plc_verdicts, checks = _certify(tmp_path / "rig.yaml", tmp_path / "out", "--check", "KZ-66-03",
                                                  "--check", "KZ-78-01")
    assert code == 1, output
    assert plc_verdicts["clauses"]["66"]["verdict"] == "FAIL"
    assert checks["KZ-66-03"]["verdict"] == "FAIL"
    assert _measurement(checks["KZ-66-03"], "secure channel with an untrusted application certificate")[
        "measured"] == "accepted"
    matrix = checks["KZ-78-01"]
    assert matrix["verdict"] == "INCONCLUSIVE" and "viewer" in matrix["reason"], matrix["reason"]
    assert {m["name"].split(":")[0] for m in matrix["measurements"]} == {"administrator", "operator"}
