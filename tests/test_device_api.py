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
