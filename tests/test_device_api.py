"""The Modbus driver against a real simulator: batching, errors for people, bounded waits, transcript."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from harness.config.rig import Dut
from harness.devices.api import DeviceRefused, DeviceUnreachable, NotDeclared
from harness.devices.modbus import ModbusDevice, plan_batches
from harness.devices.transcript import Transcript
from harness.fault_injection.ports import free_port
from harness.quantities import energy_registers


def _device(loaded, port: int, transcript=None, timeout: float = 1.0) -> ModbusDevice:
    timing = loaded.rig.timing.model_copy(update={"request_timeout_s": timeout, "retries": 1})
    return ModbusDevice("meter", loaded.profiles["meter"], loaded.dut("meter"), timing, transcript,
                        {"host": "127.0.0.1", "port": port})


def _ready(device: ModbusDevice) -> None:
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            device.read("active_import_total")
            return
        except DeviceUnreachable:
            time.sleep(0.05)
    raise AssertionError("simulator did not answer")


def test_batches_follow_the_register_map(builtin_loaded_rig):
    m = builtin_loaded_rig.profiles["meter"].modbus
    batches = plan_batches([(r.name, m.points[r.name]) for r in energy_registers(4)], m.max_registers_per_request)
    assert [(b.address, b.count) for b in batches] == [(0x100, 20), (0x120, 20), (0x140, 10), (0x150, 10)]
    assert len(plan_batches([(r.name, m.points[r.name]) for r in energy_registers(4)], 8)) == 10


def test_reads_identity_clock_and_energy(builtin_loaded_rig, sim_meter, tmp_path):
    transcript = Transcript(tmp_path / "t.jsonl")
    with _device(builtin_loaded_rig, sim_meter.port, transcript) as dev:
        _ready(dev)
        ident = dev.identity()
        assert (ident.serial_number, ident.firmware_version) == ("95000001", "1.4.2")
        values = dev.read_many([r.name for r in energy_registers(4)])
        assert values["active_import_total"].value == sum(values[f"active_import_t{t}"].value for t in range(1, 5))
        assert values["reactive_import_total"].unit == "varh" and values["reactive_import_total"].resolution == 10
        target = datetime(2027, 2, 3, 4, 5, 6, tzinfo=UTC)
        dev.set_clock(target)
        assert abs(dev.read_clock().value - target) < timedelta(seconds=2)
        with pytest.raises(NotDeclared):
            dev.read("heat_energy")
    transcript.close()
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert {x["op"] for x in lines} == {"read", "unlock", "write"} and all("latency_ms" in x for x in lines)
    assert all("values" not in x for x in lines if x["op"] == "unlock")  # the lab's password is not evidence


def test_protocol_exception_is_reported_not_retried(builtin_loaded_rig, sim_meter):
    with _device(builtin_loaded_rig, sim_meter.port) as dev:
        _ready(dev)
        with pytest.raises(DeviceRefused) as err:
            dev.write_registers(0x0100, [1, 2, 3, 4])  # energy is read-only
        assert err.value.code == 2 and "illegal data address" in str(err.value)


def test_unreachable_device_fails_within_bounded_time(builtin_loaded_rig):
    port = free_port()  # nothing listens here
    with _device(builtin_loaded_rig, port, timeout=0.3) as dev:
        t0 = time.monotonic()
        with pytest.raises(DeviceUnreachable, match="cannot connect"):
            dev.read("active_import_total")
        assert time.monotonic() - t0 < 3


def test_dut_model_rejects_inconsistent_rig():
    with pytest.raises(ValueError, match="needs `launch`"):
        Dut.model_validate({"profile": "p.yaml", "transport": {"tcp": {"port": 502}}, "power": {"kind": "process"}})


_READ_THEN_DIE = """
import json, os, signal, sys
from pathlib import Path
from harness.config import load_rig
from harness.devices.modbus import ModbusDevice
from harness.devices.transcript import Transcript
from harness.quantities import energy_registers
from harness.resources import builtin_rig

loaded = load_rig(builtin_rig())
timing = loaded.rig.timing.model_copy(update={"request_timeout_s": 2.0, "retries": 3})
device = ModbusDevice("meter", loaded.profiles["meter"], loaded.dut("meter"), timing, Transcript(Path(sys.argv[1])),
                      {"host": "127.0.0.1", "port": int(sys.argv[2])})
names = [r.name for r in energy_registers(4)]
values = device.read_many(names)
print(json.dumps({n: values[n].value for n in names}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # right after the answer: no close, no flush, no exit handler
"""


def test_a_killed_harness_keeps_every_answered_exchange(builtin_loaded_rig, sim_meter, tmp_path):
    """The guarantee of the transcript (evidence): an exchange that was answered is on its way to the disk before the
    read returns, so a harness killed with SIGKILL right after a read keeps every line of it, with the registers
    it was answered with."""
    import signal
    import subprocess
    import sys

    with _device(builtin_loaded_rig, sim_meter.port) as dev:
        _ready(dev)
    path = tmp_path / "t.jsonl"
    res = subprocess.run([sys.executable, "-c", _READ_THEN_DIE, str(path), str(sim_meter.port)], capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == -signal.SIGKILL, res.stderr
    told = json.loads(res.stdout)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    answered = [x for x in lines if x["op"] == "read" and "registers" in x]
    m = builtin_loaded_rig.profiles["meter"].modbus
    batches = plan_batches([(n, m.points[n]) for n in told], m.max_registers_per_request)
    assert [(x["address"], x["count"]) for x in answered] == [(b.address, b.count) for b in batches]
    # the last line is the last answer, whole: its registers give the values the harness was told
    last = batches[-1]
    regs = answered[-1]["registers"]
    from harness.devices import codec

    for name, point in last.members:
        off = point.address - last.address
        assert codec.decode_point(point, regs[off:off + point.register_count]) == told[name]


def test_the_drivers_readings_are_readings():
    """modbus._reading skips the frozen dataclass's __init__ for speed: what it makes must be a Reading in every
    respect a check can see (equal, same hash and repr, still frozen)."""
    import dataclasses

    from harness.devices.api import Reading
    from harness.devices.modbus import _reading

    args = ("active_import_total", 1234, "Wh", 1.0, 10.5, 10.75, False)
    fast, slow = _reading(*args), Reading(*args)
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.value = 0  # type: ignore[misc]
