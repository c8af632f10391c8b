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
from conftest import CONTROLLER_DEFECTS_GROUP, CONTROLLER_GOLDEN_GROUP, ROOT, run_cli
from defect_rigs import not_passing_of

from harness.simulators.defects import CONTROLLER_DEFECTS

RIG = ROOT / "rigs" / "sim-controller.yaml"
OPCUA_CHECKS = ["KZ-66-01", "KZ-66-02", "KZ-66-03", "KZ-76-01", "KZ-76-02", "KZ-76-03", "KZ-78-01"]
ACCESS_DEFECTS = sorted(name for name, d in CONTROLLER_DEFECTS.items() if d.expect in OPCUA_CHECKS)
# Proven by one run of the whole suite over one simulated controller per defect (tests/defect_rigs.py), which
# also shows that nothing else of the suite fails with them; the others by a run of their own check each.
WHOLE_SUITE_DEFECTS = ["auth_trusts_any_certificate", "auth_ignores_password", "auth_session_certificate_optional",
                       "identity_writable"]


def _certify(rig: Path | str, out: Path, *args: str) -> tuple[int, str, dict, dict[str, dict]]:
    res = run_cli("certify", str(rig), "--out", str(out), "--reruns", "0", *args, timeout=120)
    verdicts = json.loads((out / "verdicts.json").read_text())
    checks = {r["id"]: r for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())}
    return res.returncode, res.stdout + res.stderr, verdicts["duts"]["plc"], checks


def _measurement(record: dict, name: str) -> dict:
    return next(m for m in record["measurements"] if m["name"] == name)


@pytest.mark.slow
@pytest.mark.xdist_group(CONTROLLER_GOLDEN_GROUP)
def test_golden_controller_passes_every_opcua_access_check(controller_golden_run):
    """Read from the golden certification of the whole rig (conftest: controller_golden_run), which runs these checks
    among all the others."""
    out = controller_golden_run.out
    controller_golden_run.passed()
    plc = json.loads((out / "verdicts.json").read_text())["duts"]["plc"]
    checks = {r["id"]: r for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())}
    assert {c: checks[c]["verdict"] for c in OPCUA_CHECKS} == dict.fromkeys(OPCUA_CHECKS, "PASS")
    for clause in ("66", "76", "78"):
        assert plc["clauses"][clause]["verdict"] == "PASS", plc["clauses"][clause]
    assert all(re.search(r"\[SR \d+\.\d+", checks[c]["title"]) for c in OPCUA_CHECKS), "each names its SR"
    # The evidence says how each refusal came: the None guard at CreateSession, not the client's own matching.
    skipped = _measurement(checks["KZ-66-02"], "session over SecurityPolicy None (a client skipping endpoint "
                           "matching)")
    assert skipped["measured"] == "refused at session: BadSecurityPolicyRejected"
    untrusted = _measurement(checks["KZ-66-03"], "secure channel with an untrusted application certificate")
    assert untrusted["measured"] == "refused at session: BadCertificateUntrusted"
    assert "channel untrusted-client.der; CreateSession ClientCertificate untrusted-client.der" in untrusted["note"]
    bare = _measurement(checks["KZ-66-03"], "secure channel with an untrusted application certificate, "
                        "CreateSession without ClientCertificate")
    assert bare["measured"] == "refused at session: BadCertificateUntrusted"  # the channel's certificate counts
    assert "channel untrusted-client.der; CreateSession ClientCertificate none" in bare["note"]
    assert _measurement(checks["KZ-66-03"], "ActivateSession with a forged ClientSignature (trusted certificate)")[
        "measured"] == "refused at activation: BadApplicationSignatureInvalid"
    lock = checks["KZ-76-02"]["measurements"]
    assert [m["measured"] for m in lock[3:6]] == ["refused at activation: BadUserAccessDenied"] * 2 + ["accepted"]
    assert _measurement(checks["KZ-76-02"], "lockout of view1 in the audit log (security_event)")["measured"] >= 1
    matrix = {m["name"]: m["measured"] for m in checks["KZ-78-01"]["measurements"]}
    assert len(matrix) == 3 * (7 + 1)  # every declared role × every operation of the vocabulary + read-only writes
    assert matrix["viewer: write_setpoint"] == "refused (BadUserAccessDenied), supply_setpoint unchanged"
    assert matrix["operator: firmware"] == "refused (BadUserAccessDenied)"
    assert matrix["administrator: firmware"] == "reached the update logic (BadInvalidState)"
    # every row tried (issue 14.6): permitted log and user management only reach their argument checks
    assert matrix["administrator: manage_log"] == "reached the method's own checks (BadTooManyArguments)"
    assert matrix["administrator: manage_users"] == "reached the method's own checks (BadArgumentsMissing)"
    assert matrix["viewer: manage_users"] == matrix["operator: manage_users"] == "refused (BadUserAccessDenied)"
    assert all(matrix[f"{r}: write read-only points"] == "refused (BadNotWritable), unchanged"
               for r in ("administrator", "operator", "viewer"))
    transcript = (out / "transcript.jsonl").read_text()
    assert '"op":"endpoints"' in transcript.replace(" ", "")


@pytest.mark.slow
@pytest.mark.xdist_group(CONTROLLER_DEFECTS_GROUP)
@pytest.mark.parametrize("defect", [d for d in ACCESS_DEFECTS if d not in WHOLE_SUITE_DEFECTS])
def test_access_defect_fails_its_check(controller_defects, defect):
    d = CONTROLLER_DEFECTS[defect]
    run = controller_defects.run(d)  # its DUT's check FAILed on its clause
    assert [c["id"] for c in run.clause["checks"] if c["verdict"] == "FAIL"] == [d.expect]


@pytest.mark.slow
@pytest.mark.xdist_group(CONTROLLER_DEFECTS_GROUP)
@pytest.mark.whole_suite("access_control", WHOLE_SUITE_DEFECTS)
def test_defects_fail_only_their_check_in_the_whole_suite(controller_defects):
    """Their DUTs run all of access_control inside the controller batch (conftest: DefectBatch), beside the DUTs
    that run only their own check."""
    assert set(WHOLE_SUITE_DEFECTS) <= set(ACCESS_DEFECTS)
    for defect in WHOLE_SUITE_DEFECTS:
        _out, res = controller_defects.part(defect)
        assert res.returncode == 1, res.stdout + res.stderr
    records = controller_defects.records(WHOLE_SUITE_DEFECTS)
    for defect in WHOLE_SUITE_DEFECTS:  # each ran the whole suite (for a controller: its OPC UA checks at least)
        assert set(OPCUA_CHECKS) <= {r["id"] for r in records if r["dut"] == defect}, defect
    assert {r["suite"] for r in records} == {"access_control"}
    assert not_passing_of(records) == {d: {CONTROLLER_DEFECTS[d].expect: "FAIL"} for d in WHOLE_SUITE_DEFECTS}
    checks = {(r["dut"], r["id"]): r for r in records}
    trust = checks["auth_trusts_any_certificate", "KZ-66-03"]
    assert _measurement(trust, "secure channel with an untrusted application certificate")["measured"] == "accepted"
    assert _measurement(trust, "untrusted certificate as user identity (over a trusted channel)")[
        "measured"] == "accepted"
    bare = checks["auth_session_certificate_optional", "KZ-66-03"]
    assert _measurement(bare, "secure channel with an untrusted application certificate")["measured"].startswith(
        "refused")  # the ordinary client still meets the trust list: only the certificate-less CreateSession gets in
    assert _measurement(bare, "secure channel with an untrusted application certificate, CreateSession without "
                        "ClientCertificate")["measured"] == "accepted"
    serial = _measurement(checks["identity_writable", "KZ-78-01"], "administrator: write read-only points")
    assert serial["measured"].startswith("serial_number: written"), serial
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


def test_a_permitted_operation_the_profile_gives_no_means_to_try_is_inconclusive(tmp_path):
    """14.6: nothing untried counts as passed. The golden controller's profile without its user-management method:
    the administrator is granted manage_users but the harness has no way to try it — KZ-78-01 is INCONCLUSIVE and
    says so (the roles that may not manage users are likewise untried), instead of a PASS."""
    rig = yaml.safe_load(RIG.read_text())
    plc = rig["duts"]["plc"]
    profile = yaml.safe_load((RIG.parent / plc["profile"]).read_text())
    del profile["opcua"]["methods"]["set_password"]
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    plc["profile"] = str(tmp_path / "profile.yaml")
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(rig), encoding="utf-8")
    code, output, _plc, checks = _certify(tmp_path / "rig.yaml", tmp_path / "out", "--check", "KZ-78-01")
    assert code == 1, output
    matrix = checks["KZ-78-01"]
    assert matrix["verdict"] == "INCONCLUSIVE", matrix.get("reason")
    assert "administrator: manage_users not tried" in matrix["reason"]
    assert "viewer: manage_users not tried" in matrix["reason"]
    rows = {m["name"]: m for m in matrix["measurements"]}
    assert rows["administrator: manage_users"]["passed"] is False  # shown as not passed, never as a pass


def test_permitted_calls_with_wrong_arguments_only_on_a_destructive_rig(tmp_path):
    """Touch only what you may: a role that may clear the audit log or manage users is shown to pass the role check
    by a call with the wrong number of arguments — harmless on a device that keeps Part 4, a cleared log or a
    changed account on one that ignores its arguments. On a rig without allow_destructive those rows are not
    tried, and KZ-78-01 says so (INCONCLUSIVE), never a PASS."""
    rig = yaml.safe_load(RIG.read_text())
    rig["allow_destructive"] = False
    plc = rig["duts"]["plc"]
    plc["profile"] = str((RIG.parent / plc["profile"]).resolve())
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(rig), encoding="utf-8")
    code, output, _plc, checks = _certify(tmp_path / "rig.yaml", tmp_path / "out", "--check", "KZ-78-01")
    assert code == 1, output
    matrix = checks["KZ-78-01"]
    assert matrix["verdict"] == "INCONCLUSIVE", matrix.get("reason")
    assert "administrator: manage_log not tried" in matrix["reason"]
    rows = {m["name"]: m for m in matrix["measurements"]}
    assert "allow_destructive" in rows["administrator: manage_log"]["note"]
    assert rows["viewer: manage_log"]["passed"] is True  # a forbidden call is the attack itself: still tried
