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

from harness.bench import Bench
from harness.config import load_rig
from harness.resources import builtin_rig

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
