"""A meter with two interfaces whose peer switches (cl. 85, 84) end to end, as a user runs it: the
built-in dual-interface rig passes the failover suite with the main link cut by the proxy (and, as
root with namespaces, by a veth cut), and every channel defect fails the check its catalogue names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, checks_of, run_cli

from harness.config import load_profile
from harness.fault_injection.netns import netns_available
from harness.simulators.defects import CHANNEL_DEFECTS

RIG = ROOT / "rigs" / "sim-meter-dual.yaml"
PEER_CHECKS = {"KZ-85-03", "KZ-85-04", "KZ-84-03", "KZ-84-04"}




def _certify(tmp_path: Path, rig: Path, *defects: str) -> tuple[int, dict[str, dict], str]:
    out = tmp_path / "out"
    args = ["certify", str(rig), "--out", str(out), "--suite", "failover", "--reruns", "0"]
    for d in defects:
        args += ["--defect", d]
    res = run_cli(*args)
    return res.returncode, checks_of(out), res.stdout + res.stderr


def _passes(tmp_path: Path, rig: Path) -> dict[str, dict]:
    code, checks, log = _certify(tmp_path, rig)
    assert code == 0, log
    assert {c: checks[c]["verdict"] for c in PEER_CHECKS} == dict.fromkeys(PEER_CHECKS, "PASS"), log
    return checks


@pytest.mark.serial
def test_golden_dual_interface_meter_passes(tmp_path):
    checks = _passes(tmp_path, RIG)
    down = next(m for m in checks["KZ-84-03"]["measurements"] if m["name"] == "main shown down after the cut")
    assert 3.0 <= down["measured"] <= 4.0, down  # the profile declares down_after_s 3
    assert checks["KZ-84-03"]["charts"], "the link-status timeline is kept for the report"
    faults = [json.loads(line) for line in (tmp_path / "out" / "faults.jsonl").read_text().splitlines()]
    begun = [(f["kind"], f["what"]) for f in faults if f["phase"] == "begin"]
    assert begun == [("link", "cut")] and [f["phase"] for f in faults] == ["begin", "end"], faults


@pytest.mark.slow
@pytest.mark.serial
def test_a_reserve_left_idle_by_earlier_checks_is_no_fault(tmp_path):
    """The soak (KZ-67-01) reads only main for longer than the profile's down_after_s: the device rightly shows the
    idle reserve down until it is read again. KZ-84-03 judges the status from the moment both interfaces answered
    (it went FLAKY in the dual rig's whole certification when it judged the first status read)."""
    out = tmp_path / "out"
    res = run_cli("certify", str(RIG), "--out", str(out), "--check", "KZ-67-01", "--check", "KZ-84-03",
                  "--reruns", "0")
    checks = checks_of(out)
    assert res.returncode == 0 and checks["KZ-84-03"]["verdict"] == "PASS", res.stdout + res.stderr


@pytest.mark.serial
@pytest.mark.skipif(netns_available() is not None, reason=f"network namespaces: {netns_available()}")
def test_golden_passes_with_the_main_link_cut_in_a_namespace(tmp_path):
    rig = tmp_path / "dual-netns.yaml"
    text = RIG.read_text().replace("link: proxy", "link: netns").replace("../device_profiles",
                                                                         str(ROOT / "device_profiles"))
    rig.write_text(text)
    _passes(tmp_path, rig)


@pytest.mark.serial
@pytest.mark.parametrize("defects", [("reserve_dies_with_main",), ("main_stays_down",),
                                     ("link_status_stuck", "channel_events_not_logged")])
@pytest.mark.slow
def test_channel_defect_fails_its_check(tmp_path, defects):
    code, checks, log = _certify(tmp_path, RIG, *defects)
    assert code == 1, log
    expected = {d.expect for d in CHANNEL_DEFECTS if d.name in defects}
    for check_id in expected:
        assert checks[check_id]["verdict"] == "FAIL", checks[check_id]
    if len(defects) > 1:  # independent defects: each fails its own check and no other
        assert {c for c in PEER_CHECKS if checks[c]["verdict"] == "FAIL"} == expected


def test_every_peer_check_has_a_defect():
    assert {d.expect for d in CHANNEL_DEFECTS} == PEER_CHECKS


def test_single_interface_meter_is_not_applicable(tmp_path):
    out = tmp_path / "out"
    res = run_cli("certify", str(ROOT / "rigs" / "sim-meter.yaml"), "--out", str(out), "--check", "KZ-85-03")
    assert res.returncode == 0, res.stdout + res.stderr
    record = checks_of(out)["KZ-85-03"]
    assert record["verdict"] == "N/A" and "one interface" in record["reason"], record


def test_dual_profile_is_the_em4_profile_plus_its_interfaces():
    """TEK-SIM-EM4D repeats TEK-SIM-EM4's profile: only the declared differences may differ."""
    em4 = load_profile(ROOT / "device_profiles" / "tek-sim-em4.yaml").model_dump()
    em4d = load_profile(ROOT / "device_profiles" / "tek-sim-em4d.yaml").model_dump()
    assert em4d["interfaces"] and em4["interfaces"] is None
    assert em4d["modbus"]["points"].pop("link_status")
    codes = em4d["modbus"]["journal"]["codes"]
    assert {codes.pop(501), codes.pop(502)} == {"channel_down", "channel_up"}
    for p in (em4, em4d):
        for key in ("model", "description", "interfaces"):
            p.pop(key)
    assert em4d == em4


def test_a_two_interface_meter_on_a_rig_that_cannot_switch_is_inconclusive_not_na(tmp_path):
    """The bench, not the device, is the limit: a profile with two interfaces on a rig without the reserve
    transport says INCONCLUSIVE and names the rig setting, never N/A."""
    rig = yaml.safe_load((ROOT / "rigs" / "sim-meter-dual.yaml").read_text())
    meter = rig["duts"]["meter"]
    meter["profile"] = str(ROOT / "device_profiles" / "tek-sim-em4d.yaml")
    del meter["reserve_transport"]
    meter["launch"]["command"] = [a for a in meter["launch"]["command"] if a not in ("--rtu", "{reserve_serial_port}")]
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(rig))
    out = tmp_path / "out"
    run_cli("certify", str(tmp_path / "rig.yaml"), "--out", str(out), "--check", "KZ-85-03", "--reruns", "0")
    record = checks_of(out)["KZ-85-03"]
    assert record["verdict"] == "INCONCLUSIVE" and "reserve_transport" in record["reason"], record
