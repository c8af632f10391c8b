"""Suite `protocol` (cl. 68, 81) end to end, as a user runs it: the golden simulators pass — the meter on
Modbus/TCP, the meter on RTU over a pseudo-terminal (the CRC check), the controller on OPC UA — and each
protocol defect of the simulated meter's wire level fails exactly its check. The suite and the robustness
suite share one golden Modbus/TCP run (in tests/test_robustness_suite.py, to save a simulator start)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.config.modbus_map import ModbusMap
from harness.simulators.defects import METER_DEFECTS, WIRE_DEFECTS
from tests.conftest import ROOT, run_cli

TCP_RIG, RTU_RIG, UA_RIG = (str(ROOT / "rigs" / f"{name}.yaml") for name in ("sim-meter", "sim-meter-rtu",
                                                                             "sim-controller"))
MODBUS_CHECKS = [f"KZ-68-{n:02d}" for n in range(1, 8)]
OPCUA_CHECKS = [f"KZ-68-{n:02d}" for n in range(8, 12)]
needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="RTU over a pty pair needs socat")


def _run(out: Path, *args: str) -> tuple[int, str, dict, dict[str, dict]]:
    res = run_cli("certify", *args, "--out", str(out), "--reruns", "0", timeout=180)
    assert "Traceback" not in res.stderr, res.stderr
    verdicts = json.loads((out / "verdicts.json").read_text())
    checks = {r["id"]: r for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())}
    return res.returncode, res.stdout + res.stderr, verdicts, checks


@needs_socat
@pytest.mark.serial
def test_golden_meter_on_rtu_passes(tmp_path):
    code, output, _verdicts, checks = _run(tmp_path / "out", RTU_RIG, "--suite", "protocol")
    assert code == 0, output
    assert {c: checks[c]["verdict"] for c in MODBUS_CHECKS} == {
        **{c: "PASS" for c in MODBUS_CHECKS}, "KZ-68-05": "N/A"}  # no MBAP on a serial line
    crc = checks["KZ-68-07"]["measurements"]
    assert crc[0]["measured"] == "no answer" and crc[1]["passed"]
    assert {checks[c]["verdict"] for c in OPCUA_CHECKS} == {"N/A"}


def test_golden_controller_passes_the_opcua_checks(tmp_path):
    code, output, verdicts, checks = _run(tmp_path / "out", UA_RIG, "--suite", "protocol")
    assert code == 0, output
    assert {checks[c]["verdict"] for c in OPCUA_CHECKS} == {"PASS"}
    assert {checks[c]["verdict"] for c in MODBUS_CHECKS} == {"N/A"}
    plc = verdicts["duts"]["plc"]["clauses"]
    assert plc["68"]["verdict"] == plc["81"]["verdict"] == "PASS"
    unknown = {m["name"].split(" of ")[0]: m["measured"] for m in checks["KZ-68-09"]["measurements"]}
    assert unknown["Browse"] == unknown["Read"] == unknown["Write"] == "BadNodeIdUnknown"


@pytest.mark.parametrize("defect", [d.name for d in WIRE_DEFECTS if d.clause == "68"])
def test_protocol_defect_fails_its_check(tmp_path, defect):
    d = METER_DEFECTS[defect]
    rig = RTU_RIG if defect == "answers_bad_crc" else TCP_RIG
    if rig == RTU_RIG and shutil.which("socat") is None:
        pytest.skip("RTU over a pty pair needs socat")
    code, output, verdicts, _checks = _run(tmp_path / "out", rig, "--defect", defect, "--check", d.expect)
    assert code == 1, output
    clause = verdicts["duts"]["meter"]["clauses"][d.clause]
    assert clause["verdict"] == "FAIL"
    assert [c["id"] for c in clause["checks"] if c["verdict"] == "FAIL"] == [d.expect]


def test_declared_function_codes_come_from_the_map_or_the_override():
    base = {"points": {"energy": {"address": 0, "type": "u32"}}}
    assert ModbusMap.model_validate(base).served_function_codes(False) == [3]
    writable = {"points": {"energy": {"address": 0, "type": "u32"},
                           "p": {"address": 9, "table": "input"}},
                "settings": {"s": {"address": 4, "writable": True}}}
    assert ModbusMap.model_validate(writable).served_function_codes(False) == [3, 4, 6, 16]
    assert ModbusMap.model_validate({**base, "clock": {"address": 64, "encoding": "packed4"}}) \
        .served_function_codes(True) == [3, 6, 16]
    assert ModbusMap.model_validate({**base, "function_codes": [16, 3, 43]}).served_function_codes(False) == [3, 16, 43]
    for bad in ({"function_codes": [0]}, {"function_codes": [3, 3]}, {"unit_id_policy": "whatever"},
                {"max_connections": 0}):
        with pytest.raises(ValueError):
            ModbusMap.model_validate({**base, **bad})
