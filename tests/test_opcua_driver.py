"""The OPC UA driver against a real asyncua server on loopback (tests/opcua_server.py), brought up by the
bench from a rig — launch placeholder {client_cert}, run-time PKI, the registry's opcua driver — exactly
as a certification run does. One server for the module; one more that is stopped and killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.bench import Bench
from harness.config import load_rig
from harness.config.rig import Dut, Timing
from harness.devices.api import DeviceError, DeviceRefused, DeviceTimeout, DeviceUnreachable, NotDeclared
from harness.devices.opcua import OpcuaDevice
from harness.devices.opcua_pki import ensure_pki
from harness.devices.opcua_session import SessionRefused, UserPassword
from harness.events import AuditKind
from harness.fault_injection.ports import free_port

HERE = Path(__file__).resolve().parent
PROFILE = HERE / "data" / "opcua-stock.yaml"
SERVER = HERE / "opcua_server.py"
USERS = "admin1:apw:administrator,oper1:opw:operator,view1:vpw:viewer"
BAD_USER_ACCESS_DENIED = 0x801F0000
CREDENTIALS = """
    credentials:
      administrator: {user: admin1, password: apw}
      operator: {user: oper1, password: opw}
      viewer: {user: view1, password: vpw}
"""


# Its module-scoped fixtures are made once per worker: one group keeps the module on one worker (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("opcua-driver")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("opcua")
    rig = root / "rig.yaml"
    rig.write_text(f"""
name: stock-opcua
timing: {{request_timeout_s: 1.0, retries: 1}}
duts:
  plc:
    profile: {PROFILE}
    transport: {{tcp: {{host: 127.0.0.1, port: auto}}}}
{CREDENTIALS}
    launch:
      command: ["{{python}}", "{SERVER}", "--port", "{{port}}", "--pki", "{{state_dir}}/server-pki",
                "--trust", "{{client_cert}}", "--credentials-file", "{{credentials_file}}"]
      ready_timeout_s: 20
""", encoding="utf-8")
    bench = Bench(load_rig(rig), root / "out")
    try:
        yield bench
    finally:
        bench.close()


@pytest.fixture(scope="module")
def plc(bench: Bench) -> OpcuaDevice:
    device = bench.dut("plc").device
    assert isinstance(device, OpcuaDevice)
    return device


def test_bench_makes_the_pki_and_hands_the_trusted_certificate_to_the_launch(bench, plc):
    runtime = bench.dut("plc")
    pki = runtime.pki
    assert pki.directory == bench.private_dir / "pki"  # private keys never in the run folder (issue 13)
    assert pki.trusted.der.is_file() and pki.untrusted.der.is_file() and pki.trusted.key.is_file()
    assert str(pki.trusted.der) in runtime.process.argv()
    assert plc.pki.trusted == pki.trusted  # the driver uses the very certificate the device was told to trust
    again = ensure_pki(pki.directory)
    assert again.trusted.der.read_bytes() == pki.trusted.der.read_bytes()  # made once per run, then reused


def test_reads_are_batched_in_canonical_units_with_harness_times(plc):
    got = plc.read_many(["serial_number", "flow_temperature", "heat_power", "supply_setpoint"])
    assert got["serial_number"].value == "TS-0001" and got["serial_number"].unit is None
    assert got["flow_temperature"].value == pytest.approx(71.5) and got["flow_temperature"].unit == "degC"
    assert got["heat_power"].value == pytest.approx(12500.0) and got["heat_power"].unit == "W"  # kW on the device
    assert len({(r.t_sent, r.t_received) for r in got.values()}) == 1  # one Read request
    r = got["flow_temperature"]
    assert r.t_sent <= r.t_received and r.floating
    assert plc.identity().serial_number == "TS-0001" and plc.identity().firmware_version == "1.4.2"
    assert plc.settings() == ["supply_setpoint", "ramp_rate"]
    with pytest.raises(NotDeclared):
        plc.read("active_import_total")
    with pytest.raises(NotDeclared, match="audit log"):
        plc.read_journal()


def test_clock_is_set_and_read_in_the_device_time_zone(plc):
    when = datetime(2031, 5, 6, 7, 8, 9, 250000, tzinfo=UTC)
    plc.set_clock(when)
    clock = plc.read_clock()
    assert clock.value == when and clock.value.utcoffset() == timedelta(hours=6)
    plc.set_clock(datetime.now(UTC))


def test_writes_go_as_the_least_privileged_role_and_refusals_carry_the_status(plc):
    plc.write("supply_setpoint", 70)  # operator may write setpoints
    assert plc.read("supply_setpoint").value == pytest.approx(70.0)
    plc.write("ramp_rate", 3.5)  # only the administrator may write parameters
    assert plc.read("ramp_rate").value == pytest.approx(3.5)
    with plc.session(role="viewer") as viewer:
        assert viewer.read("supply_setpoint").value == pytest.approx(70.0)
        with pytest.raises(DeviceRefused, match="BadUserAccessDenied") as refused:
            viewer.write("supply_setpoint", 71)  # a ServiceFault
        assert refused.value.code == BAD_USER_ACCESS_DENIED
    with plc.session(role="operator") as operator, pytest.raises(DeviceRefused) as refused:
        operator.write("ramp_rate", 4)  # a bad StatusCode in the write's results
    assert refused.value.code == BAD_USER_ACCESS_DENIED and "ramp_rate" in str(refused.value)
    with pytest.raises(DeviceError, match="not writable"):
        plc.write("serial_number", 1)


def test_methods_are_called_with_the_declared_argument_types(plc):
    assert plc.call("scale", 3, 2.5) == pytest.approx(7.5)  # UInt32 and Double, not Python's Int64 guess
    with plc.session(role="viewer") as viewer, pytest.raises(DeviceRefused) as refused:
        viewer.call("start_pump")
    assert refused.value.code == BAD_USER_ACCESS_DENIED
    with pytest.raises(NotDeclared):
        plc.call("self_destruct")


def test_every_session_attempt_is_returned_as_data(plc):
    wrong = plc.attempt_session(identity=UserPassword("admin1", "wrong"))
    assert (wrong.accepted, wrong.outcome, wrong.step, wrong.status_name) == \
        (False, "refused", "activation", "BadUserAccessDenied")
    assert wrong.status_code == BAD_USER_ACCESS_DENIED
    untrusted_app = plc.attempt_session(role="viewer", application="untrusted")
    assert (untrusted_app.step, untrusted_app.status_name) == ("session", "BadCertificateUntrusted")
    untrusted_user = plc.attempt_session(identity="untrusted_certificate")
    assert (untrusted_user.accepted, untrusted_user.step) == (False, "activation")
    assert plc.attempt_session(identity="certificate").accepted
    not_offered = plc.attempt_session(role="viewer", policy="None")
    assert (not_offered.accepted, not_offered.step) == (False, "endpoint")
    anonymous = plc.attempt_session(identity="anonymous", policy="Basic256Sha256", mode="Sign")
    assert (anonymous.step, anonymous.status_name) == ("activation", "BadIdentityTokenRejected")
    times = {}
    for policy in plc.map.security.policies:
        attempt = plc.attempt_session(role="viewer", policy=policy)
        assert attempt.accepted, attempt
        times[policy.value] = attempt.duration_s
    print("session open s per policy:", json.dumps(times))
    with pytest.raises(SessionRefused) as refused, plc.session(identity=("view1", "nope")):
        pass
    assert refused.value.attempt.step == "activation" and refused.value.code == BAD_USER_ACCESS_DENIED


def test_skip_endpoint_matching_is_accepted_by_a_stock_server(plc):
    """The gap LIBRARIES.md names: a None channel and raw CreateSession/ActivateSession get a session on a
    server that lists only secure endpoints; the password travelled in clear. The simulator closes it."""
    attempt = plc.attempt_session(role="operator", skip_endpoint_matching=True)
    assert attempt.accepted and (attempt.policy, attempt.mode) == ("None", "None"), attempt
    with plc.session(role="operator", skip_endpoint_matching=True) as s:
        assert s.read("serial_number").value == "TS-0001"
    anonymous = plc.attempt_session(identity="anonymous", skip_endpoint_matching=True)
    assert (anonymous.step, anonymous.status_name) == ("activation", "BadIdentityTokenRejected")
    with pytest.raises(ValueError):
        plc.spec(role="viewer", policy="Basic256Sha256", skip_endpoint_matching=True)


def test_audit_log_history_and_live_events(plc):
    before = datetime.now(UTC) - timedelta(seconds=1)
    plc.write("supply_setpoint", 66)
    entries = plc.read_audit_log(start=before)
    change = [e for e in entries if e.kind == AuditKind.SETTINGS_CHANGE and "Setpoint" in (e.subject or "")][-1]
    assert (change.user, change.outcome, change.category) == ("oper1", True, "set")
    assert float(change.new) == pytest.approx(66.0) and change.raw["Kind"] == "set"
    assert [e.time for e in entries] == sorted(e.time for e in entries)
    assert len(plc.read_audit_log()) >= len(entries)
    assert plc.read_audit_log(start=datetime.now(UTC) + timedelta(days=1)) == []
    with plc.subscribe_audit() as watch:
        plc.call("start_pump")
        seen = watch.wait_for(lambda e: e.kind == AuditKind.CONTROL_ACTION, timeout_s=5)
    assert seen is not None and seen.subject == "Plant.StartPump"


def test_update_helpers_transfer_in_chunks_and_drive_the_methods(plc):
    import hashlib

    update = plc.update
    with pytest.raises(DeviceRefused, match="BadInvalidState"):
        update.install()  # nothing transferred yet
    image = bytes(range(256)) * 11  # 2816 bytes: three chunks of the declared 1024
    assert update.transfer(image) == 3
    assert update.state() == "Transferred"
    update.install()
    digest = "sha256:" + hashlib.sha256(image).hexdigest()[:12]
    assert update.available_version() == digest  # the device got the bytes in order
    update.activate()
    assert (update.running_version(), update.previous_version()) == (digest, "1.4.2")
    update.rollback()
    assert update.wait_state(["RolledBack"], 2) == "RolledBack" and update.running_version() == "1.4.2"


def test_every_exchange_is_in_the_transcript(bench, plc):
    plc.read("flow_temperature")
    plc.write("supply_setpoint", 65)
    plc.call("start_pump")
    plc.read_audit_log()
    with plc.subscribe_audit():
        pass
    with plc.session(role="viewer") as viewer, pytest.raises(DeviceRefused):
        viewer.write("supply_setpoint", 64)
    with plc.session(role="administrator") as admin:  # a partial image: the update test's state is left alone
        admin.call_node(plc.map.update.object, plc.map.update.methods.transfer, b"\x00" * 100, 0, 1000)
    lines = [json.loads(x) for x in (bench.out_dir / "transcript.jsonl").read_text().splitlines()]
    ops = {x["op"] for x in lines if x["dut"] == "plc"}
    assert {"session", "read", "write", "call", "history_read", "subscribe"} <= ops
    refused = [x for x in lines if x.get("status") == BAD_USER_ACCESS_DENIED]
    assert refused and all("BadUserAccessDenied" in x["error"] for x in refused)
    transfers = [x for x in lines if x["op"] == "call" and str(x.get("method", "")).endswith("Transfer")]
    assert transfers and all(isinstance(x["args"][0], dict) for x in transfers)  # bytes summarized, not dumped
    assert all("latency_ms" in x for x in lines)


def test_a_stopped_device_times_out_and_a_killed_one_is_unreachable(tmp_path):
    pki = ensure_pki(tmp_path / "pki")
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port), "--pki", str(tmp_path / "spki"),
                             "--trust", str(pki.trusted.der), "--users", USERS],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    from harness.config import load_profile

    dut = Dut.model_validate({"profile": str(PROFILE), "transport": {"tcp": {"host": "127.0.0.1", "port": port}},
                              "credentials": {"viewer": {"user": "view1", "password": "vpw"}}})
    device = OpcuaDevice("plc2", load_profile(PROFILE), dut, Timing(request_timeout_s=0.4, retries=1),
                         pki_dir=tmp_path / "pki")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"  # bounded by pytest timeout
        assert device.read("serial_number").value == "TS-0001"
        os.kill(proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeout):
            device.read("serial_number")
        assert time.monotonic() - t0 < 8
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        t0 = time.monotonic()
        with pytest.raises(DeviceUnreachable):
            device.read("serial_number")
        assert time.monotonic() - t0 < 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        device.close()


# ---- the simulated controller (harness sim controller), through the same bench and driver ---------------------
SIM_PROFILE = HERE.parent / "device_profiles" / "tek-sim-pc1.yaml"
SIM_USERS = "admin1:pw-admin:administrator,oper1:pw-oper:operator,view1:pw-view:viewer"


@pytest.fixture(scope="module")
def sim_bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("opcua-sim")
    rig = root / "rig.yaml"
    rig.write_text(f"""
name: sim-controller
timing: {{request_timeout_s: 1.0, retries: 1}}
duts:
  pc1:
    profile: {SIM_PROFILE}
    transport: {{tcp: {{host: 127.0.0.1, port: auto}}}}
    credentials:
      administrator: {{user: admin1, password: pw-admin}}
      operator: {{user: oper1, password: pw-oper}}
      viewer: {{user: view1, password: pw-view}}
    launch:
      command: ["{{python}}", "-m", "harness", "sim", "controller", "--profile", "{{profile}}",
                "--state-dir", "{{state_dir}}", "--tcp", "{{host}}:{{port}}", "--control", "{{control_port}}",
                "--trust", "{{client_cert}}", "--credentials-file", "{{credentials_file}}", "--defects", "{{defects}}"]
      ready_timeout_s: 30
    control: {{port: auto}}
    firmware:
      current: "{{state_dir}}/vendor/pc1-2.1.0.img"
      next: "{{state_dir}}/vendor/pc1-2.2.0.img"
""", encoding="utf-8")
    bench = Bench(load_rig(rig), root / "out")
    try:
        yield bench
    finally:
        bench.close()


def test_the_simulated_controller_through_the_driver(sim_bench):
    """The contract of docs/opcua.md end to end: roles, the attack refused, audit log, a signed update."""
    runtime = sim_bench.dut("pc1")
    pc1 = runtime.device
    assert runtime.identity.firmware_version == "2.1.0"
    values = pc1.read_many(list(pc1.map.points))
    assert values["supply_setpoint"].unit == "degC" and isinstance(values["clock"].value, datetime)
    pc1.write("supply_setpoint", 68)
    with pytest.raises(DeviceRefused) as refused, pc1.session(role="viewer") as viewer:
        viewer.write("supply_setpoint", 69)
    assert refused.value.code == BAD_USER_ACCESS_DENIED
    attack = pc1.attempt_session(role="operator", skip_endpoint_matching=True)
    assert not attack.accepted and attack.outcome == "refused" and attack.step in ("channel", "session"), attack
    pc1.call("start_pump")
    entries = pc1.read_audit_log()
    assert any(e.kind == AuditKind.CONTROL_ACTION and e.user == "oper1" for e in entries)
    assert any(e.kind == AuditKind.SETTINGS_CHANGE and e.user == "oper1" for e in entries)
    state_dir = runtime.out_dir / "state" / "pc1"
    image = runtime.spec.firmware.path("next", state_dir).read_bytes()
    update = pc1.update
    assert update.transfer(image) >= 1 and update.state() == "Transferred"
    update.install()
    assert update.wait_state(["Installed", "Failed"], 10) == "Installed"
    update.activate()
    assert update.wait_state(["Confirming", "Idle"], 10) is not None
    update.confirm()
    assert update.wait_state(["Idle"], 10) == "Idle"
    assert (update.running_version(), update.previous_version()) == ("2.2.0", "2.1.0")
