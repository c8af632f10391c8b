"""End to end through the CLI, as a user runs it: the golden meter passes every cl. 31, cl. 94, cl. 95
and cl. 97 check, and every seeded defect fails its clause with the check id the defect catalogue promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.simulators.defects import (
    ACCESS_DEFECTS,
    AVAILABILITY_DEFECTS,
    CHANNEL_DEFECTS,
    METER_DEFECTS,
    WIRE_DEFECTS,
)
from tests.conftest import METER_DEFECTS_GROUP, METER_GOLDEN_GROUP, checks_of, run_cli, verdicts_of

# The checks the built-in meter rig runs, by clause: cl. 31 (interval_data), cl. 94 (access_control), cl. 95
# (registers, tariffs, nvm, clock), cl. 97 (journal), cl. 67 and 73 (availability; the rig's link-fault schedule).
CHECKS_BY_CLAUSE = {"31": [f"KZ-31-{n:02d}" for n in range(1, 6)], "94": [f"KZ-94-{n:02d}" for n in range(1, 4)],
                    "95": [f"KZ-95-{n:02d}" for n in range(1, 12)], "97": [f"KZ-97-{n:02d}" for n in range(1, 8)],
                    "67": ["KZ-67-01"], "73": ["KZ-73-01"]}
ALL_CHECKS = [check for ids in CHECKS_BY_CLAUSE.values() for check in ids]
# Documentary checks (suite documentation) run on every DUT; their "defects" are lapsed papers (test_documentation).
DOC_CHECKS = ["KZ-50-01", "KZ-58-01", "KZ-59-01", "KZ-72-01", "KZ-79-01", "KZ-87-01", "KZ-93-01"]
# The peer-switching checks are N/A for this single-interface meter; their defects need the dual rig
# (tests/test_peer_channels.py).
PEER_CHECKS = ["KZ-84-03", "KZ-84-04", "KZ-85-03", "KZ-85-04"]
# The access-control defects run in tests/test_access_control_modbus.py, with the symptom each check must show.
# The availability defect runs in tests/test_availability.py (a soak per run).
SINGLE_INTERFACE_DEFECTS = sorted(set(METER_DEFECTS) - {d.name for d in (*CHANNEL_DEFECTS, *ACCESS_DEFECTS,
                                                                       *WIRE_DEFECTS, *AVAILABILITY_DEFECTS)})
# Suites protocol and robustness (cl. 68/81, 49); their defects run in tests/test_protocol_suite.py and
# tests/test_robustness_suite.py. On this TCP meter the RTU check and the OPC UA checks are N/A.
WIRE_CHECKS = [f"KZ-68-{n:02d}" for n in range(1, 12)] + [f"KZ-49-{n:02d}" for n in range(1, 5)]
WIRE_NOT_APPLICABLE = ["KZ-68-07", "KZ-68-08", "KZ-68-09", "KZ-68-10", "KZ-68-11"]
# The DLMS checks (tests/test_dlms.py) are N/A on a Modbus meter.
DLMS_CHECKS = ["KZ-68-12", "KZ-68-13", "KZ-68-14", "KZ-68-15", "KZ-94-04", "KZ-94-05", "KZ-94-06", "KZ-94-07",
               "KZ-94-08", "KZ-94-09"]
NOT_APPLICABLE = [*PEER_CHECKS, *WIRE_NOT_APPLICABLE, *DLMS_CHECKS]






@pytest.mark.slow
@pytest.mark.xdist_group(METER_GOLDEN_GROUP)
def test_golden_meter_certifies(meter_golden_run):
    out, res = meter_golden_run.out, meter_golden_run.res  # `harness certify`, every check, with its Allure report
    assert res.returncode == 0, res.stdout + res.stderr
    verdicts = verdicts_of(out)
    assert verdicts["verdict"] == "PASS" and verdicts["certification_grade"] is True
    meter = verdicts["duts"]["meter"]
    assert meter["serial_number"] == "95000001" and meter["model"] == "TEK-SIM-EM4"
    for clause in CHECKS_BY_CLAUSE:
        assert meter["clauses"][clause]["verdict"] == "PASS", meter["clauses"][clause]
    checks = checks_of(out)
    assert sorted(checks) == sorted(ALL_CHECKS + DOC_CHECKS + PEER_CHECKS + WIRE_CHECKS + DLMS_CHECKS)
    assert all(c["verdict"] == "PASS" and c["measurements"] for c in checks.values() if c["id"] not in NOT_APPLICABLE)
    assert {checks[c]["verdict"] for c in NOT_APPLICABLE} == {"N/A"}
    assert {c["kind"] for c in checks.values() if c["id"] in DOC_CHECKS} == {"documentary"}
    for check_id in ALL_CHECKS:  # a line per check as it runs, and the final table
        assert check_id in res.stdout
    assert all(f"cl. {c}" in res.stdout for c in CHECKS_BY_CLAUSE) and "overall: PASS" in res.stdout
    assert (out / "transcript.jsonl").stat().st_size > 0
    results = list((out / "allure-results").glob("*-result.json"))
    labels = {(lab["name"], lab["value"]) for r in results for lab in json.loads(r.read_text())["labels"]}
    assert ("feature", "cl. 95") in labels and ("as_id", "KZ-95-07") in labels and ("story", "nvm") in labels
    assert ("feature", "cl. 97") in labels and ("as_id", "KZ-97-06") in labels and ("story", "journal") in labels
    assert (out / "config" / "rig-sim-meter.yaml").exists()
    # The run ends sealed: certificate, readable report, manifest and signature, and it verifies.
    for name in ("certificate.json", "certificate.html", "allure-report.html", "manifest.json",
                 "certificate.sig.json"):
        assert (out / name).exists(), name
    assert json.loads((out / "certificate.json").read_text())["verdict"] == "PASS"
    assert run_cli("verify", str(out)).returncode == 0


@pytest.mark.xdist_group(METER_DEFECTS_GROUP)
@pytest.mark.parametrize("defect", SINGLE_INTERFACE_DEFECTS)
def test_seeded_defect_fails_its_check(meter_defects, defect):
    run = meter_defects.run(METER_DEFECTS[defect])
    expected = METER_DEFECTS[defect].expect
    assert next(c for c in run.clause["checks"] if c["id"] == expected)["verdict"] == "FAIL"
    assert sorted(run.checks) == [expected]  # its DUT ran only that check
    assert all(verdicts_of(out)["certification_grade"] is False for out in meter_defects.outs)  # checks were selected


def test_every_check_has_a_defect():
    """Every check a Modbus meter can run (on this rig, the dual rig or the RTU rig) has a seeded defect."""
    modbus_wire = [c for c in WIRE_CHECKS if c not in WIRE_NOT_APPLICABLE] + ["KZ-68-07"]
    assert {d.expect for d in METER_DEFECTS.values()} == set(ALL_CHECKS + PEER_CHECKS + modbus_wire)


def test_usage_errors_exit_2(tmp_path):
    res = run_cli("certify", "--out", str(tmp_path / "a"), "--defect", "no_such_defect")
    assert res.returncode == 2 and "unknown defect" in res.stderr
    res = run_cli("certify", "--out", str(tmp_path / "b"), "--suite", "no_such_suite")
    assert res.returncode == 2 and "unknown suite" in res.stderr
    res = run_cli("certify", "--out", str(tmp_path / "c"), "--check", "KZ-99-99")
    assert res.returncode == 2 and "unknown check id" in res.stdout + res.stderr
    res = run_cli("certify", "--out", str(tmp_path / "d"), "--check", "no_such_dut:KZ-95-01")
    assert res.returncode == 2 and "no DUT 'no_such_dut' in the rig; DUTs: meter" in res.stdout + res.stderr


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_killed_run_keeps_finished_checks_and_leaves_no_simulator(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "certify", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = (out / "checks.jsonl").read_text().splitlines() if (out / "checks.jsonl").exists() else []
            if len(lines) >= 2:
                break
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    kept = [json.loads(line) for line in (out / "checks.jsonl").read_text().splitlines()]
    assert len(kept) >= 2 and kept[0]["id"] == "KZ-31-01"
    deadline = time.monotonic() + 5
    while _processes_mentioning(str(out / "state")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_mentioning(str(out / "state")) == []


def test_dut_that_never_answers_is_inconclusive_not_a_pass(tmp_path):
    rig = tmp_path / "rig.yaml"
    rig.write_text(
        "name: dead\nallow_destructive: true\nduts:\n  meter:\n"
        f"    profile: {Path(__file__).resolve().parent.parent / 'device_profiles' / 'tek-sim-em4.yaml'}\n"
        "    transport: {tcp: {host: 127.0.0.1, port: auto}}\n"
        "    launch: {command: ['{python}', '-c', 'import sys; sys.exit(3)'], ready_timeout_s: 5}\n")
    res = run_cli("certify", str(rig), "--out", str(tmp_path / "out"), "--suite", "registers")
    assert res.returncode == 1
    verdicts = verdicts_of(tmp_path / "out")
    assert verdicts["duts"]["meter"]["clauses"]["95"]["verdict"] == "INCONCLUSIVE"
    assert verdicts["certification_grade"] is False
    assert "exited with code 3" in res.stdout
