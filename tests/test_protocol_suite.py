"""Suite `protocol` (cl. 68, 81) end to end, as a user runs it: the golden simulators pass — the meter on
Modbus/TCP, the meter on RTU over a pseudo-terminal (the CRC check), the controller on OPC UA — and each
protocol defect of the simulated meter's wire level, and of the simulated controller's OPC UA services, fails
exactly its check. The suite and the robustness suite share one golden Modbus/TCP run and one golden RTU run
(in tests/test_robustness_suite.py, to save simulator starts)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from harness.config.modbus_map import ModbusMap
from harness.simulators.defects import CONTROLLER_DEFECTS, METER_DEFECTS, WIRE_DEFECTS
from tests.conftest import CONTROLLER_DEFECTS_GROUP, CONTROLLER_GOLDEN_GROUP, ROOT, run_cli, verdicts_of
from tests.defect_rigs import not_passing, not_passing_of, rig_per_defect

TCP_RIG, RTU_RIG = (str(ROOT / "rigs" / f"{name}.yaml") for name in ("sim-meter", "sim-meter-rtu"))
MODBUS_CHECKS = [f"KZ-68-{n:02d}" for n in range(1, 8)]
OPCUA_CHECKS = [f"KZ-68-{n:02d}" for n in range(8, 12)]
UA_DEFECTS = sorted(name for name, d in CONTROLLER_DEFECTS.items() if d.expect in OPCUA_CHECKS)
needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="RTU over a pty pair needs socat")


def _run(out: Path, *args: str) -> tuple[int, str, dict, dict[str, dict]]:
    res = run_cli("certify", *args, "--out", str(out), "--reruns", "0", timeout=180)
    assert "Traceback" not in res.stderr, res.stderr
    verdicts = json.loads((out / "verdicts.json").read_text())
    checks = {r["id"]: r for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())}
    return res.returncode, res.stdout + res.stderr, verdicts, checks


@pytest.mark.slow
@pytest.mark.xdist_group(CONTROLLER_GOLDEN_GROUP)
def test_golden_controller_passes_the_opcua_checks(controller_golden_run):
    """Read from the golden certification of the controller rig (conftest: controller_golden_run)."""
    controller_golden_run.passed()
    assert "Traceback" not in controller_golden_run.res.stderr, controller_golden_run.res.stderr
    verdicts = verdicts_of(controller_golden_run.out)
    checks = controller_golden_run.checks("protocol")
    assert {checks[c]["verdict"] for c in OPCUA_CHECKS} == {"PASS"}
    assert {checks[c]["verdict"] for c in MODBUS_CHECKS} == {"N/A"}
    plc = verdicts["duts"]["plc"]["clauses"]
    assert plc["68"]["verdict"] == plc["81"]["verdict"] == "PASS"
    unknown = {m["name"].split(" of ")[0]: m["measured"] for m in checks["KZ-68-09"]["measurements"]}
    assert unknown["Browse"] == unknown["Read"] == unknown["Write"] == "BadNodeIdUnknown"


@needs_socat
@pytest.mark.serial
def test_bad_crc_defect_fails_its_check(tmp_path):
    d = METER_DEFECTS["answers_bad_crc"]
    code, output, verdicts, _checks = _run(tmp_path / "out", RTU_RIG, "--defect", d.name, "--check", d.expect)
    assert code == 1, output
    clause = verdicts["duts"]["meter"]["clauses"][d.clause]
    assert clause["verdict"] == "FAIL"
    assert [c["id"] for c in clause["checks"] if c["verdict"] == "FAIL"] == [d.expect]


@pytest.mark.slow
def test_modbus_tcp_defects_fail_exactly_their_checks(tmp_path):
    """The whole suite once over one simulated meter per Modbus/TCP protocol defect (tests/defect_rigs.py):
    each DUT fails exactly the check its defect names, with the symptom the defect describes."""
    defects = {d.name: d for d in WIRE_DEFECTS if d.clause == "68" and d.name != "answers_bad_crc"}
    assert sorted(d.expect for d in defects.values()) == [c for c in MODBUS_CHECKS if c != "KZ-68-07"]
    rig = rig_per_defect(Path(TCP_RIG), defects, tmp_path / "rig.yaml")
    data = yaml.safe_load(rig.read_text())
    data["timing"]["request_timeout_s"] = 0.25  # loopback answers in ms; "no answer" is waited for 4 times a DUT
    rig.write_text(yaml.safe_dump(data, sort_keys=False))
    code, output, verdicts, _checks = _run(tmp_path / "out", str(rig), "--suite", "protocol")
    assert code == 1, output
    assert not_passing(tmp_path / "out") == {name: {d.expect: "FAIL"} for name, d in defects.items()}
    for name, d in defects.items():
        assert verdicts["duts"][name]["clauses"][d.clause]["verdict"] == "FAIL"
    shown = {(r["dut"], r["id"]): r for r in map(json.loads, (tmp_path / "out" / "checks.jsonl").read_text()
                                                 .splitlines())}
    failed = {name: {m["name"]: m["measured"] for m in shown[name, d.expect]["measurements"] if not m["passed"]}
              for name, d in defects.items()}
    assert [m for m in failed["write_multiple_single_refused"] if m.startswith("FC16 write")] and \
        set(failed["write_multiple_single_refused"].values()) == {"exception 01 (function code 0x90)"}
    assert set(failed["undeclared_fc_answered"]) == {"FC08 (not declared)", "FC43 (not declared)"}
    assert sorted(failed["illegal_quantity_accepted"].values()) == ["answer, function code 0x03, 2 PDU bytes",
                                                                    "answer, function code 0x03, 254 PDU bytes"]
    assert list(failed["any_unit_id_answered"]) == ["unit 2 (not the configured 1)"]


@pytest.mark.slow
@pytest.mark.xdist_group(CONTROLLER_DEFECTS_GROUP)
@pytest.mark.whole_suite("protocol", UA_DEFECTS)
def test_opcua_defects_fail_exactly_their_checks(controller_defects):
    """The whole suite once over one simulated controller per OPC UA protocol defect (tests/defect_rigs.py), inside
    the controller defect batch (conftest: DefectBatch; its other DUTs run other checks): each of these DUTs fails
    exactly the check its defect names, everything else of the suite passes or is N/A."""
    defects = {name: CONTROLLER_DEFECTS[name] for name in UA_DEFECTS}
    assert sorted(d.expect for d in defects.values()) == OPCUA_CHECKS  # every OPC UA check has its defect
    for name, d in defects.items():
        out, res = controller_defects.part(name)
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stdout + res.stderr
        assert verdicts_of(out)["duts"][name]["clauses"][d.clause]["verdict"] == "FAIL"
    records = controller_defects.records(defects)
    assert {r["suite"] for r in records} == {"protocol"}
    for name in defects:  # each ran the whole suite (for a controller: its OPC UA checks at least)
        assert set(OPCUA_CHECKS) <= {r["id"] for r in records if r["dut"] == name}, name
    assert not_passing_of(records) == {name: {d.expect: "FAIL"} for name, d in defects.items()}
    shown = {(r["dut"], r["id"]): r for r in records}
    reasons = {name: shown[name, d.expect]["reason"] for name, d in defects.items()}
    assert "Basic128Rsa15/Sign" in reasons["endpoint_extra_policy"]
    assert "Read of" in reasons["unknown_node_wrong_status"] and "Browse of" not in reasons["unknown_node_wrong_status"]
    assert "accepted (Good)" in reasons["write_wrong_type_accepted"]
    assert "Call of" in reasons["access_denied_wrong_status"] and "Write of" in reasons["access_denied_wrong_status"]


def test_declared_function_codes_come_from_the_map_or_the_override():
    base = {"points": {"active_import_total": {"address": 0, "type": "u32"}}}
    assert ModbusMap.model_validate(base).served_function_codes(False) == [3]
    writable = {"points": {"active_import_total": {"address": 0, "type": "u32"},
                           "x_p": {"address": 9, "table": "input"}},
                "settings": {"s": {"address": 4, "writable": True}}}
    assert ModbusMap.model_validate(writable).served_function_codes(False) == [3, 4, 6, 16]
    assert ModbusMap.model_validate({**base, "clock": {"address": 64, "encoding": "packed4"}}) \
        .served_function_codes(True) == [3, 6, 16]
    assert ModbusMap.model_validate({**base, "function_codes": [16, 3, 43]}).served_function_codes(False) == [3, 16, 43]
    for bad in ({"function_codes": [0]}, {"function_codes": [3, 3]}, {"unit_id_policy": "whatever"},
                {"max_connections": 0}):
        with pytest.raises(ValueError):
            ModbusMap.model_validate({**base, **bad})


def test_simulated_meter_serves_the_coils_and_discrete_inputs_its_profile_declares(tmp_path):
    """A variant of EM4 that declares a coil setting and a discrete input: the simulator serves FC1/2/5/15 from
    its own points and settings, and the protocol suite judges them (read, own value written back, unmapped
    coil → 02, quantity and coil value → 03)."""
    text = (ROOT / "device_profiles" / "tek-sim-em4.yaml").read_text(encoding="utf-8")
    coil = "    x_relay: {address: 5, table: coil, type: bool, writable: true}\n"
    discrete = "    x_cover_closed: {address: 2, table: discrete_input, type: bool}\n"
    text = text.replace("  settings:\n", "  settings:\n" + coil).replace("  points:\n", "  points:\n" + discrete)
    profile = tmp_path / "em4-bits.yaml"
    profile.write_text(text, encoding="utf-8")
    data = yaml.safe_load(Path(TCP_RIG).read_text(encoding="utf-8"))
    data["duts"]["meter"]["profile"] = str(profile)
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    code, output, _verdicts, checks = _run(tmp_path / "out", str(rig), "--check", "KZ-68-01", "--check", "KZ-68-03",
                                           "--check", "KZ-68-04")
    assert code == 0, output
    names = {m["name"]: m for c in ("KZ-68-01", "KZ-68-03", "KZ-68-04") for m in checks[c]["measurements"]}
    assert names["FC01 read of x_relay (1 coil at 5)"]["passed"]
    assert names["FC02 read of x_cover_closed (1 discrete_input at 2)"]["passed"]
    assert names["FC05 write of x_relay (1 at 5) with its own value 0"]["passed"]
    assert names["FC15 write of x_relay (1 at 5) with its own value 0"]["passed"]
    assert names["FC01 read at unmapped coil 0"]["measured"] == "exception 02 (function code 0x81)"
    assert names["FC05 at 5: value 0x1234 (neither ON nor OFF)"]["measured"] == "exception 03 (function code 0x85)"
    assert names["FC15 at 5: byte count 2 for 1 coil"]["measured"] == "exception 03 (function code 0x8F)"
