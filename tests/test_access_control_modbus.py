"""Access control of Modbus meters (cl. 94 / 78, suite access_control) end to end, and the driver's unlock.

Through the CLI: the golden meter passes KZ-94-01…03, each access defect fails the check the catalogue names
with the symptom that check measures, and a profile that declares no write protection fails KZ-94-02 with
the reason. Against one simulator process: the driver opens the write session itself (once per session, again
after a reconnect or once the device closed it), keeps the lab's password out of the transcript, and says
which rig field is missing when the rig gives no password.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from pydantic import ValidationError

from harness.config import load_rig
from harness.config.rig_security import Credential
from harness.config.write_protection import UnlockRegister, WriteProtection
from harness.devices.api import DeviceError, DeviceRefused, DeviceUnreachable, WriteGuarded
from harness.devices.modbus import ModbusDevice
from harness.devices.transcript import Transcript
from harness.resources import builtin_profile, builtin_rig
from harness.simulators.defects import ACCESS_DEFECTS, METER_DEFECTS
from tests.conftest import (
    METER_GOLDEN_GROUP,
    SimMeter,
    builtin_unlock_password,
    certify_defect,
    checks_of,
    run_cli,
    start_sim,
)

CHECKS = ["KZ-94-01", "KZ-94-02", "KZ-94-03"]
# the suite's DLMS association checks: N/A on a Modbus meter
DLMS_CHECKS = ["KZ-94-04", "KZ-94-05", "KZ-94-06", "KZ-94-07", "KZ-94-08", "KZ-94-09"]
SYMPTOM = {  # what the failing check must say it measured
    "meter_energy_writable": "active_import_total: write of",
    "meter_clock_unprotected": "without the unlock: clock write: accepted",
    "readonly_clock_writable": "declared read-only: clock write: accepted",
    "tamper_not_logged": "new cover_open entries: 0",
}
EXPECTS = {"meter_energy_writable": "KZ-94-01", "meter_clock_unprotected": "KZ-94-02",
           "readonly_clock_writable": "KZ-94-02", "tamper_not_logged": "KZ-94-03"}




# ---- end to end ---------------------------------------------------------------------------------------------
@pytest.mark.xdist_group(METER_GOLDEN_GROUP)
def test_golden_meter_passes_access_control(meter_golden_run):
    """Read from the golden certification of the built-in meter rig (conftest: meter_golden_run)."""
    out = meter_golden_run.out
    meter_golden_run.passed()
    records = meter_golden_run.checks("access_control")
    assert sorted(records) == CHECKS + DLMS_CHECKS, sorted(records)
    assert all(records[c]["verdict"] == "PASS" for c in CHECKS), records
    assert all(records[c]["verdict"] == "N/A" and "dlms" in records[c]["reason"].lower() for c in DLMS_CHECKS), \
        {c: records[c]["reason"] for c in DLMS_CHECKS}
    clauses = json.loads((out / "verdicts.json").read_text())["duts"]["meter"]["clauses"]
    assert clauses["94"]["verdict"] == "PASS" and clauses["78"]["verdict"] == "PASS"
    protection = {m["name"]: m["measured"] for m in records["KZ-94-02"]["measurements"]}
    assert protection["without the unlock: clock write"].startswith("refused: exception")
    assert protection["with the unlock: setting ct_ratio write"] == "accepted"
    transcript = [json.loads(x) for x in (out / "transcript.jsonl").read_text().splitlines()]
    unlocks = [x for x in transcript if x["op"] == "unlock"]
    assert any(x.get("redacted") for x in unlocks) and all("values" not in x for x in unlocks if x.get("redacted"))


def test_catalogue():
    assert {d.name: d.expect for d in ACCESS_DEFECTS} == EXPECTS and set(EXPECTS) == set(SYMPTOM)
    assert all(METER_DEFECTS[d.name].clause == "94" for d in ACCESS_DEFECTS)


@pytest.mark.parametrize("defect", list(SYMPTOM))
def test_access_defect_fails_its_check(tmp_path, defect):
    rig = _read_only_rig(tmp_path) if defect == "readonly_clock_writable" else None
    run = certify_defect(tmp_path, METER_DEFECTS[defect], rig=rig)
    assert SYMPTOM[defect] in run.record["reason"], run.record["reason"]


def _read_only_rig(tmp_path) -> str:
    """The built-in rig with a meter whose profile declares its clock and settings read-only (no write protection)."""
    doc = yaml.safe_load(builtin_profile("tek-sim-em4.yaml").read_text())
    del doc["modbus"]["write_protection"]
    doc.pop("documentation")
    doc["clock"]["writable"] = False
    doc["modbus"]["function_codes"] = [3, 4, 6, 16]  # it serves writes (to something): they reach the registers
    for setting in doc["modbus"]["settings"].values():
        setting["writable"] = False
        setting.pop("test_value", None)
    (tmp_path / "read-only.yaml").write_text(yaml.safe_dump(doc))
    rig = builtin_rig().read_text().replace("../device_profiles/tek-sim-em4.yaml", str(tmp_path / "read-only.yaml"))
    (tmp_path / "read-only-rig.yaml").write_text(rig)
    return str(tmp_path / "read-only-rig.yaml")


def test_a_meter_declared_read_only_is_tried_not_excused(tmp_path):
    """Nothing writable declared is no N/A: the forced writes are sent, and the golden meter refuses them all."""
    out = tmp_path / "out"
    res = run_cli("certify", _read_only_rig(tmp_path), "--out", str(out), "--check", "KZ-94-02", "--reruns", "0")
    record = checks_of(out)["KZ-94-02"]
    assert record["verdict"] == "PASS", res.stdout + res.stderr
    measured = {m["name"]: m["measured"] for m in record["measurements"]}
    assert measured["declared read-only: clock write"].startswith("refused: exception")
    assert any(name.startswith("declared read-only: setting ") for name in measured)


def test_meter_without_write_protection_fails(tmp_path):
    doc = yaml.safe_load(builtin_profile("tek-sim-em4.yaml").read_text())
    del doc["modbus"]["write_protection"]
    doc.pop("documentation")
    (tmp_path / "open.yaml").write_text(yaml.safe_dump(doc))
    rig = builtin_rig().read_text().replace("../device_profiles/tek-sim-em4.yaml", str(tmp_path / "open.yaml"))
    (tmp_path / "rig.yaml").write_text(rig)
    out = tmp_path / "out"
    res = run_cli("certify", str(tmp_path / "rig.yaml"), "--out", str(out), "--check", "KZ-94-02", "--reruns", "0")
    assert res.returncode == 1, res.stdout + res.stderr
    record = checks_of(out)["KZ-94-02"]
    assert record["verdict"] == "FAIL"
    assert "the meter declares no write protection: anyone on the bus can set its clock" in record["reason"]


# ---- the driver against one simulator -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimMeter]:
    meter = start_sim(tmp_path_factory.mktemp("access") / "state")
    try:
        yield meter
    finally:
        meter.kill()


def _device(sim: SimMeter, transcript: Transcript | None = None, credentials: bool = True) -> ModbusDevice:
    loaded = load_rig(builtin_rig())
    dut = loaded.dut("meter")
    if not credentials:
        dut = dut.model_copy(update={"credentials": {}})
    timing = loaded.rig.timing.model_copy(update={"request_timeout_s": 1.0, "retries": 1})
    device = ModbusDevice("meter", loaded.profiles["meter"], dut, timing, transcript,
                          {"host": "127.0.0.1", "port": sim.port})
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            device.probe()
            return device
        except DeviceUnreachable:
            time.sleep(0.05)
    raise AssertionError("simulator did not answer")


def _advance(sim: SimMeter, seconds: float) -> None:
    with socket.create_connection(("127.0.0.1", sim.control_port), timeout=5) as s:
        s.sendall(json.dumps({"op": "advance", "seconds": seconds}).encode() + b"\n")
        assert json.loads(s.makefile().readline())["ok"]


def test_driver_unlocks_protected_writes_by_itself(sim, tmp_path):
    transcript = Transcript(tmp_path / "t.jsonl")
    with _device(sim, transcript) as dev:
        assert isinstance(dev, WriteGuarded)
        target = datetime(2027, 2, 3, 4, 5, 6, tzinfo=UTC)
        dev.set_clock(target)
        dev.write("ct_ratio", 25)  # same session: no second unlock
        assert abs(dev.read_clock().value - target) < timedelta(seconds=2) and dev.read("ct_ratio").value == 25
        assert 0 < dev.session_closes_in() <= 60
        dev.close()  # a reconnect: the driver unlocks again (a device may tie sessions to a connection)
        dev.write("ct_ratio", 26)
        _advance(sim, 120)  # the device's session closes in device time; the driver learns it from the refusal
        dev.write("ct_ratio", 1)
        assert dev.read("ct_ratio").value == 1
        _advance(sim, 120)
        with pytest.raises(DeviceRefused) as refused:
            dev.write("ct_ratio", 2, unlock=False)
        assert refused.value.code == 4
        with pytest.raises(DeviceRefused) as wrong:
            dev.unlock(dev.wrong_password())
        assert wrong.value.code == 3 and dev.wrong_password() != builtin_unlock_password()
        dev.set_clock(datetime.now(UTC))
    transcript.close()
    ops = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    unlocks = [x for x in ops if x["op"] == "unlock"]
    # first write, after the reconnect, the retry after the closed session, after the wrong one
    assert [bool(x.get("redacted")) for x in unlocks] == [True, True, True, False, True]
    assert all("values" not in x for x in unlocks if x.get("redacted"))
    retried = [x for x in ops if x["op"] == "write" and x.get("exception") == 4]
    assert len(retried) == 2  # the one refused on the closed session (then retried), the unlock=False one


def test_rig_without_the_password_is_told_which_field(sim):
    with _device(sim, credentials=False) as dev:
        dev.read_clock()  # reads need no password
        with pytest.raises(DeviceError, match=r"duts\.meter\.credentials\.unlock\.password"):
            dev.set_clock(datetime.now(UTC))


def test_write_protection_and_password_models():
    wp = WriteProtection(unlock={"address": 0x0F80, "type": "u32"}, session_s=60, protects=["clock", "settings"])
    assert wp.unlock.password_value("20250094") == 20250094 and wp.guards("clock")
    for bad in ("12ab", "4294967296"):
        with pytest.raises(ValueError, match="number"):
            wp.unlock.password_value(bad)
    text = UnlockRegister(address=0x2180, type="string", length=4)
    assert text.password_value("v2Unlock") == "v2Unlock" and text.other_password("WRONG-PA") == "wrong-pa"
    with pytest.raises(ValueError, match="at most 8"):
        text.password_value("much-too-long")
    for bad in ({"address": 1, "type": "string"}, {"address": 1, "type": "u16", "length": 2}):
        with pytest.raises(ValidationError, match="length"):
            UnlockRegister(**bad)
    with pytest.raises(ValidationError, match="twice"):
        WriteProtection(unlock={"address": 1}, session_s=1, protects=["clock", "clock"])
    assert Credential(password="1234").user is None  # a password alone: a meter without user names
    with pytest.raises(ValidationError, match="both `user` and `password`"):
        Credential(user="u")
