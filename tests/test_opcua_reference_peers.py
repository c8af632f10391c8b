"""The OPC UA checks against a stack nobody on this project wrote: a plain asyncua 2.1 ``Server``
(tests/opcua_reference_server.py, its documented API only) in two configurations, each with its own profile in
tests/data, started by the bench from a rig as a subprocess on a free loopback port and stopped by its PID.

The expected verdicts are written down from OPC UA Parts 2 and 4 (and the Rules where a clause asks for more),
not from what the harness happened to say: a verdict that disagrees is a failing test, whoever is wrong.

(a) ``defaults`` — ``Server()`` as it comes: no application certificate, so its only endpoint is None/None; the
    permissive user manager takes any user name with any password (``admin`` as Admin) and anonymous users.
(b) ``hardened`` — Basic256Sha256 SignAndEncrypt only, client certificates checked by a TrustStore-backed
    CertificateValidator, user names only, a user manager with three accounts, a viewer role without Write and
    Call through ``permission_ruleset``. No lockout and no audit log (asyncua has neither; the profile says so:
    ``absent``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

HERE = Path(__file__).resolve().parent
SERVER = HERE / "opcua_reference_server.py"
CREDENTIALS = {"administrator": {"user": "admin1", "password": "apw"},
               "operator": {"user": "oper1", "password": "opw"}, "viewer": {"user": "view1", "password": "vpw"}}

EXPECTED = {
    "defaults": {
        # Anonymous is declared and gets what the only declared role (operator) may; read-only values refused
        # (asyncua's User role meets the AccessLevel check). Declared and kept: PASS.
        "KZ-66-01": "PASS",
        # Only None/None: Part 2 (4.3, 4.10) — without a SecurityPolicy no message is signed or encrypted and the
        # user token travels in clear; the Rules (cl. 51, 82) ask for cryptographic protection of channels.
        # Declaring the absence does not make it conform.
        "KZ-66-02": "FAIL",
        # No application certificate is ever exchanged (Part 4 5.6.2: ClientCertificate is part of a secured
        # channel's CreateSession): the device cannot refuse an untrusted one — any application gets in.
        "KZ-66-03": "FAIL",
        "KZ-68-08": "PASS",  # lists exactly the declared None/None
        # Browse and Call of an unknown node answer Bad_NodeIdInvalid (asyncua), and a Write by a User
        # Bad_UserAccessDenied: Part 4 (5.10.4, 5.11.2, 5.8.2) says Bad_NodeIdUnknown for a node that is not there.
        "KZ-68-09": "FAIL",
        "KZ-68-10": "PASS",  # Bad_TypeMismatch (Part 4 5.10.4) for a String into a Double
        "KZ-68-11": "INCONCLUSIVE",  # one declared role: nobody lacks a right to write or call
        "KZ-76-01": "FAIL",  # an unknown user name with any password gets a session (Part 4 5.6.3: BadUserAccessDenied)
        "KZ-76-02": "FAIL",  # no lockout (declared absent): judged without a lab account
        "KZ-76-03": "FAIL",  # admin/admin (and every factory pair) opens a session — no lab account needed
        "KZ-78-01": "INCONCLUSIVE",  # the rig gives no account for the declared role: its rows are untried
    },
    "hardened": {
        "KZ-66-01": "PASS",  # no anonymous token offered; an anonymous ActivateSession is BadIdentityTokenRejected
        # A client that skips endpoint matching gets a session over a None channel (asyncua processes
        # CreateSession/ActivateSession on any channel): Part 4 5.6.2 — the server must check that the channel's
        # security matches an endpoint it offers.
        "KZ-66-02": "FAIL",
        # CreateSession without ClientCertificate over a channel opened with an untrusted certificate is taken:
        # asyncua validates only a filled-in field, Part 4 5.6.2 requires it on every secured policy (issue 12.8).
        "KZ-66-03": "FAIL",
        "KZ-68-08": "PASS",
        "KZ-68-09": "FAIL",  # Bad_NodeIdInvalid for Browse/Call of an unknown node, Bad_UserAccessDenied for a User
        "KZ-68-10": "PASS",
        "KZ-68-11": "PASS",  # the viewer's Write and Call: Bad_UserAccessDenied (the permission ruleset)
        "KZ-76-01": "PASS",  # wrong passwords and an unknown user: Bad_UserAccessDenied at ActivateSession
        "KZ-76-02": "FAIL",  # no lockout: Part 2 (4.9.5) / IEC 62443-3-3 SR 1.11 ask for one
        "KZ-76-03": "PASS",  # the user manager knows only the lab's accounts
        # asyncua's Admin bypasses a node's AccessLevel: the administrator overwrites SerialNumber and Temperature
        # (read-only access levels) — Part 4 5.10.4 expects Bad_NotWritable (issue 12.9).
        "KZ-78-01": "FAIL",
    },
}
CHECKS = sorted(EXPECTED["defaults"])


def _rig(tmp: Path, config: str, profile: Path | None = None) -> Path:
    command = ["{python}", str(SERVER), "--config", config, "--port", "{port}"]
    dut: dict = {"profile": str(profile or HERE / "data" / f"opcua-reference-{config}.yaml"),
                 "transport": {"tcp": {"host": "127.0.0.1", "port": "auto"}}}
    if config == "hardened":
        command += ["--trust", "{client_cert}", "--trust-dir", "{state_dir}/trusted",
                    "--credentials-file", "{credentials_file}"]
        dut["credentials"] = CREDENTIALS  # (a) gets none: its checks must not need a lab account needlessly
    dut["launch"] = {"command": command, "ready_timeout_s": 20}
    rig = {"name": f"asyncua-{config}", "timing": {"request_timeout_s": 2.0, "retries": 1}, "duts": {"plc": dut}}
    path = tmp / f"rig-{config}.yaml"
    path.write_text(yaml.safe_dump(rig), encoding="utf-8")
    return path


def _certify(rig: Path, out: Path, *args: str) -> dict[str, dict]:
    res = run_cli("certify", str(rig), "--out", str(out), "--reruns", "0", *args, timeout=300)
    assert "Traceback" not in res.stderr, res.stderr
    return {r["id"]: r for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())}


def _measured(record: dict) -> dict[str, str]:
    return {m["name"]: m["measured"] for m in record["measurements"]}


@pytest.fixture(scope="module")
def peer_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict]]:
    """access_control and protocol over both peers in one certify run (a DUT each, named after its configuration,
    each as _rig launches it): config -> check id -> record."""
    tmp = tmp_path_factory.mktemp("peers")
    rig = yaml.safe_load(_rig(tmp, "defaults").read_text())
    rig["duts"] = {config: yaml.safe_load(_rig(tmp, config).read_text())["duts"]["plc"] for config in EXPECTED}
    (tmp / "rig.yaml").write_text(yaml.safe_dump(rig), encoding="utf-8")
    res = run_cli("certify", str(tmp / "rig.yaml"), "--out", str(tmp / "out"), "--reruns", "0",
                  "--suite", "access_control", "--suite", "protocol", timeout=300)
    assert "Traceback" not in res.stderr, res.stderr
    records = [json.loads(line) for line in (tmp / "out" / "checks.jsonl").read_text().splitlines()]
    return {config: {r["id"]: r for r in records if r["dut"] == config} for config in EXPECTED}


@pytest.mark.xdist_group("opcua-reference-peers")
@pytest.mark.parametrize("config", ["defaults", "hardened"])
def test_reference_peer_verdicts(peer_runs, config):
    checks = peer_runs[config]
    got = {c: checks[c]["verdict"] for c in CHECKS}
    assert got == EXPECTED[config], {c: (got[c], checks[c].get("reason", "")[:300]) for c in CHECKS
                                     if got[c] != EXPECTED[config][c]}
    untrusted = _measured(checks["KZ-66-03"])
    if config == "defaults":
        # 12.12: no session of a None-only device claims an untrusted certificate was accepted: none was sent
        assert not any("untrusted application certificate" in n for n in untrusted), untrusted
        assert untrusted == {"client applications authenticated by certificate":
                             "no: no secured endpoint, no application certificate is ever exchanged"}
        assert _measured(checks["KZ-76-03"])["factory default credentials that open a session"].startswith(
            "admin/admin")
        # 12.14: absences declared honestly are judged against the Rules, not excused
        assert _measured(checks["KZ-76-02"]) == {"declared lockout": "declared absent"}
        assert _measured(checks["KZ-76-01"])["password check"] == "declared absent: any password works"
    else:
        assert untrusted["secure channel with an untrusted application certificate"].startswith("refused")
        assert untrusted["secure channel with an untrusted application certificate, CreateSession without "
                         "ClientCertificate"] == "accepted"
        # asyncua verifies ClientSignature, though it answers Bad_InternalError, not Bad_ApplicationSignatureInvalid
        assert untrusted["ActivateSession with a forged ClientSignature (trusted certificate)"] == \
            "refused at activation: BadInternalError"
        matrix = _measured(checks["KZ-78-01"])
        assert "serial_number: written" in matrix["administrator: write read-only points"]
        assert "supply_temperature: written" in matrix["administrator: write read-only points"]
        assert matrix["viewer: write read-only points"] == "refused (BadUserAccessDenied), unchanged"


@pytest.mark.slow
def test_protocol_verdicts_do_not_depend_on_the_order_of_roles(tmp_path):
    """12.10: the hardened peer's profile with its roles listed the other way round gives the same verdicts and the
    same measurements (roles are chosen by their declared rights, every entitled one tried)."""
    profile = yaml.safe_load((HERE / "data" / "opcua-reference-hardened.yaml").read_text())
    profile["opcua"]["roles"] = dict(reversed(list(profile["opcua"]["roles"].items())))
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    rig_path = _rig(tmp_path, "hardened")  # one run, two peers: the profile as declared and reordered
    rig = yaml.safe_load(rig_path.read_text())
    plc = rig["duts"].pop("plc")
    rig["duts"] = {"as_declared": plc, "reordered": {**copy.deepcopy(plc), "profile": str(reordered)}}
    rig_path.write_text(yaml.safe_dump(rig), encoding="utf-8")
    res = run_cli("certify", str(rig_path), "--out", str(tmp_path / "out"), "--reruns", "0",
                  "--check", "KZ-68-09", "--check", "KZ-68-10", "--check", "KZ-68-11", timeout=300)
    assert "Traceback" not in res.stderr, res.stderr
    records = [json.loads(line) for line in (tmp_path / "out" / "checks.jsonl").read_text().splitlines()]
    runs = [{r["id"]: r for r in records if r["dut"] == dut} for dut in ("as_declared", "reordered")]
    for check in ("KZ-68-09", "KZ-68-10", "KZ-68-11"):
        first, second = (r[check] for r in runs)
        assert first["verdict"] == second["verdict"], check
        assert _measured(first) == _measured(second), check
    writes = [n for n in _measured(runs[0]["KZ-68-09"]) if n.startswith("Write of")]
    assert [n.rsplit(" as ", 1)[1] for n in writes] == ["administrator", "operator"]  # every role that may write


@pytest.mark.slow
def test_user_name_checks_ask_the_device_not_only_the_profile(tmp_path):
    """14.8: a profile that forgets to declare user-name logins does not make KZ-76-03 N/A while the device offers
    them in GetEndpoints: the factory defaults are tried all the same, and the evidence says where it learnt it."""
    profile = yaml.safe_load((HERE / "data" / "opcua-reference-hardened.yaml").read_text())
    profile["opcua"]["security"]["identities"] = ["certificate"]
    forgetful = tmp_path / "forgetful.yaml"
    forgetful.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    checks = _certify(_rig(tmp_path, "hardened", forgetful), tmp_path / "out", "--check", "KZ-76-03")
    record = checks["KZ-76-03"]
    assert record["verdict"] == "PASS", record.get("reason")
    note = record["measurements"][0]["note"]
    assert "not declared, but offered by the device: Basic256Sha256/SignAndEncrypt (username)" in note
