"""Modbus RTU over a real pseudo-terminal pair (socat), as a user runs it: the simulated meter
served with ``--rtu`` on one end, the driver on the other, power cuts and all."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import certify_defect, checks_of

from harness.bench import Bench
from harness.config import load_rig
from harness.resources import builtin_rig
from harness.simulators.defects import METER_DEFECTS

RTU_RIG = builtin_rig("sim-meter-rtu.yaml")
CERTIFY_TIMEOUT_S = 180  # the run takes ~30 s; this only bounds a hung one
needs_socat = pytest.mark.skipif(shutil.which("socat") is None,
                                 reason="a pseudo-terminal pair needs socat (Debian package socat)")


def _run_certify(rig: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`harness certify` in a subprocess; if it hangs, interrupt it by PID so it stops its simulator and
    socat (they run in their own sessions), then kill it."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", "certify", str(rig), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=CERTIFY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # pytest tears the bench down on KeyboardInterrupt
        try:
            stdout, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"harness certify over RTU did not finish within {CERTIFY_TIMEOUT_S} s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.serial
@needs_socat
def test_identity_over_pty(tmp_path):
    bench = Bench(load_rig(RTU_RIG), tmp_path / "out")
    try:
        runtime = bench.dut("meter")
        assert runtime.pty is not None and runtime.pty.harness_end.exists()
        assert runtime.identity is not None
        assert (runtime.identity.serial_number, runtime.identity.firmware_version) == ("95000001", "1.4.2")
        assert runtime.device.read_clock().value.year >= 2024
        socat, sim = runtime.pty.proc, runtime.process
    finally:
        bench.close()
    assert socat is not None and socat.poll() is not None, "socat still running after Bench.close"
    assert sim is not None and not sim.running, "simulator still running after Bench.close"


@pytest.mark.slow
@pytest.mark.serial
@needs_socat
def test_rtu_certify_end_to_end(tmp_path):
    out = tmp_path / "out"
    # registers, and clock with its power cut (KZ-95-10) and drift measurement over the line (KZ-95-11)
    res = _run_certify(RTU_RIG, out, "--suite", "registers", "--suite", "clock")
    assert res.returncode == 0, res.stdout + res.stderr
    verdicts = json.loads((out / "verdicts.json").read_text())
    clause = verdicts["duts"]["meter"]["clauses"]["95"]
    assert clause["verdict"] == "PASS", clause
    ran = {c["id"]: c["verdict"] for c in clause["checks"]}
    assert ran.get("KZ-95-10") == "PASS" and ran.get("KZ-95-11") == "PASS", ran
    faults = [json.loads(x) for x in (out / "faults.jsonl").read_text().splitlines()]
    assert any(f.get("kind") == "power" for f in faults), "no power cut was made"


def test_stale_rtu_reply_is_recognised():
    """An RTU reply has no transaction id: a reply that cannot belong to the request is rejected."""
    from pymodbus.pdu.register_message import (
        ReadHoldingRegistersRequest,
        ReadHoldingRegistersResponse,
        WriteMultipleRegistersRequest,
        WriteMultipleRegistersResponse,
    )

    from harness.devices.rtu_client import mismatch

    read4 = ReadHoldingRegistersRequest(dev_id=1, address=0x40, count=4)
    assert mismatch(read4, ReadHoldingRegistersResponse(dev_id=1, registers=[1, 2, 3, 4])) is None
    assert mismatch(read4, ReadHoldingRegistersResponse(dev_id=1, registers=[1, 2])) is not None
    assert mismatch(read4, WriteMultipleRegistersResponse(dev_id=1, address=0x40, count=4)) is not None
    write = WriteMultipleRegistersRequest(dev_id=1, address=0x40, registers=[1, 2, 3, 4])
    assert mismatch(write, WriteMultipleRegistersResponse(dev_id=1, address=0x40, count=4)) is None
    assert mismatch(write, WriteMultipleRegistersResponse(dev_id=1, address=0x30, count=1)) is not None


@pytest.mark.serial
@needs_socat
def test_the_line_relay_cuts_and_restores_a_live_meter(tmp_path):
    """`link: proxy` on the RTU rig: the line runs through the relay, every client (driver, robustness frames,
    replay) opens the relay's end, a cut silences the meter while its process runs, a restore brings it back."""
    from harness.conformance.wire.targets import wire_target
    from harness.devices.api import DeviceError
    from harness.fault_injection.serial_relay import SerialLinkRelay

    bench = Bench(load_rig(RTU_RIG), tmp_path / "out")
    try:
        rt = bench.dut("meter")
        relay = rt.main_link
        assert isinstance(relay, SerialLinkRelay) and rt.pty is not None
        client_end = str(relay.client_end)
        assert rt.endpoint["serial_port"] == client_end and wire_target(rt).serial_port == client_end
        assert rt.endpoint["dut_serial_port"] == str(rt.pty.dut_end)  # the meter keeps its end of the line
        assert rt.device.read_clock().value.year >= 2024
        relay.cut()
        with pytest.raises(DeviceError):
            rt.device.read_clock()
        assert rt.process is not None and rt.process.running  # silence is the line's, not a dead meter's
        relay.restore()
        assert rt.device.read_clock().value.year >= 2024
        assert relay.running
        sockets = [rt.pty.proc, relay.line.proc]
    finally:
        bench.close()
    assert not relay.running, "relay thread still running after Bench.close"
    assert all(p is not None and p.poll() is not None for p in sockets), "a socat still running after Bench.close"
    faults = [json.loads(x) for x in (tmp_path / "out" / "faults.jsonl").read_text().splitlines()]
    (cut,) = [f for f in faults if f.get("kind") == "link"]
    assert cut["what"] == "cut" and cut["injector"] == "serial-relay"
    assert [f["reason"] for f in faults if f["event"] == cut["event"] and f["phase"] == "end"] == ["restore"]


@pytest.mark.serial
@pytest.mark.slow
@needs_socat
def test_cl73_recovery_over_rtu_passes_the_golden_meter_and_fails_a_slow_one(tmp_path):
    """The RTU rig's link-fault schedule (a cut on the line's relay): the golden meter answers again after it
    (KZ-73-01 PASS, exit 0); a meter whose network module restarts after a silence does not (FAIL)."""
    golden = tmp_path / "golden"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "certify", str(RTU_RIG), "--out", str(golden),
                             "--suite", "availability"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        run = certify_defect(tmp_path / "defect", METER_DEFECTS["slow_link_recovery"], rig=RTU_RIG)
        log, _ = proc.communicate(timeout=CERTIFY_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the harness stops its simulator and socats
            proc.wait(timeout=20)
    assert "answered again after it ended: never" in run.record["reason"], run.record["reason"]
    assert proc.returncode == 0, log
    check = checks_of(golden)["KZ-73-01"]
    assert check["verdict"] == "PASS", check
    (recovery,) = [m for m in check["measurements"] if "answered again" in m["name"]]
    assert recovery["passed"] and recovery["measured"] <= 1.5, recovery
    faults = [json.loads(x) for x in (golden / "faults.jsonl").read_text().splitlines()]
    assert [f["injector"] for f in faults if f.get("kind") == "link" and f["phase"] == "begin"] == ["serial-relay"]
