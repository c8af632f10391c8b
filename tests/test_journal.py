"""The journal (cl. 97) end to end and layout by layout.

Through the CLI: every journal defect fails the check the catalogue names, with the symptom that
check measures, and the golden meter passes the journal suite (the 12-month retention check on
simulated time; its wall time is printed, not asserted: timings belong to benchmarks).
Layouts: the driver's struct-based decoding against the simulator's pymodbus-based encoding,
both in-process and over a socket, for a ring buffer that has wrapped and for a selector window.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from harness.config import load_profile
from harness.config.modbus_map import ModbusJournal
from harness.devices import codec
from harness.devices.api import DeviceUnreachable
from harness.devices.modbus import ModbusDevice
from harness.events import EventKind
from harness.resources import builtin_profile
from harness.simulators.defects import METER_DEFECTS
from harness.simulators.regimage import encode_journal_entry
from tests.conftest import METER_DEFECTS_GROUP, METER_GOLDEN_GROUP, start_sim

JOURNAL_DEFECTS = sorted(name for name, d in METER_DEFECTS.items() if d.clause == "97")
SYMPTOM = {  # what the failing check must say it measured
    "journal_time_skew": "timestamp error",
    "journal_missing_power_events": "new power_down entries: 0",
    "journal_volatile": "entries lost across the cut",
    "journal_sequence_gap": "sequence steps other than +1",
    "journal_stops_when_full": "provoked events held",
    "journal_capacity_short": "generated events still held",
    "journal_unreadable": "exception 02",
}




def test_every_journal_defect_has_a_symptom():
    assert set(SYMPTOM) == set(JOURNAL_DEFECTS)
    assert {METER_DEFECTS[d].expect for d in JOURNAL_DEFECTS} == {f"KZ-97-{n:02d}" for n in range(1, 8)}


@pytest.mark.slow
@pytest.mark.xdist_group(METER_DEFECTS_GROUP)
@pytest.mark.parametrize("defect", JOURNAL_DEFECTS)
def test_journal_defect_fails_its_check(meter_defects, defect):
    run = meter_defects.run(METER_DEFECTS[defect])
    assert SYMPTOM[defect] in run.record["reason"], run.record["reason"]


@pytest.mark.slow
@pytest.mark.xdist_group(METER_GOLDEN_GROUP)
def test_golden_meter_passes_the_journal_suite(meter_golden_run):
    """Read from the golden certification of the built-in meter rig (conftest: meter_golden_run)."""
    meter_golden_run.passed()
    records = meter_golden_run.checks("journal")
    took = max(r["finished"] for r in records.values()) - min(r["started"] for r in records.values())
    assert sorted(records) == [f"KZ-97-{n:02d}" for n in range(1, 8)]
    assert all(r["verdict"] == "PASS" for r in records.values()), records
    retention = records["KZ-97-06"]
    held = next(m for m in retention["measurements"] if m["name"] == "history held")
    assert held["measured"] >= 364  # 400 entries at the declared 1/day hold the whole year
    print(f"journal suite {took:.1f} s wall, retention {retention['finished'] - retention['started']:.1f} s")


# ---- layouts ------------------------------------------------------------------------------------
TZ = timezone(timedelta(hours=5))
OFFSET_S = 5 * 3600.0


def _variant(tmp_path: Path, journal: dict, name: str = "variant.yaml") -> Path:
    """The built-in meter's profile with another journal declaration (a meter laid out differently)."""
    doc = yaml.safe_load(builtin_profile("tek-sim-em4.yaml").read_text())
    doc["modbus"]["journal"].update(journal)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


WINDOW = {
    "capacity": 50, "when_full": "stop",
    "entry": {"size": 8, "sequence": {"offset": 7, "type": "u16"},
              "timestamp": {"offset": 0, "encoding": "packed4"},
              "code": {"offset": 4, "type": "i16"},
              "details": {"old": {"offset": 5, "type": "i32", "word_order": "little"}}},
    "layout": {"type": "window", "selector": {"address": 0x0F10}, "count": {"address": 0x0F11, "type": "u32"},
               "block": 0x0F20, "entries_per_block": 3},
}
SMALL_RING = {
    "capacity": 5,
    "entry": {"size": 9, "sequence": {"offset": 0, "type": "u32", "word_order": "little"},
              "timestamp": {"offset": 2, "encoding": "ymdhms"}, "code": {"offset": 8, "type": "u16"}},
    "layout": {"type": "ring", "head": {"address": 0x0F00}, "count": {"address": 0x0F02}, "base": 0x1000},
}


@pytest.mark.parametrize("journal", [{}, WINDOW, SMALL_RING], ids=["builtin-ring", "window", "small-ring"])
def test_entry_codec_driver_reads_what_the_simulator_writes(tmp_path, journal):
    spec: ModbusJournal = load_profile(_variant(tmp_path, journal)).modbus.journal
    local = datetime(2026, 3, 1, 12, 30, 45, tzinfo=UTC).timestamp()  # device local seconds
    details = {"subject": 0x30, "old": -7 if journal is WINDOW else 1, "new": 40}
    details = {k: v for k, v in details.items() if k in spec.entry.details}
    for seq in (1, 65535, 65537 if spec.entry.sequence.type == "u32" else 2):
        regs = encode_journal_entry(spec, seq, local, 47, details, OFFSET_S)
        entry = codec.decode_journal_entry(spec, regs, TZ)
        assert (entry.sequence, entry.code, entry.kind, entry.details) == (seq, 47, EventKind.CONFIG_CHANGE, details)
        assert entry.timestamp == datetime(2026, 3, 1, 12, 30, 45, tzinfo=TZ)


def _device(profile_path: Path, port: int) -> ModbusDevice:
    from harness.config import load_rig
    from harness.resources import builtin_rig

    loaded = load_rig(builtin_rig())
    timing = loaded.rig.timing.model_copy(update={"request_timeout_s": 1.0, "retries": 1})
    return ModbusDevice("meter", load_profile(profile_path), loaded.dut("meter"), timing, None,
                        {"host": "127.0.0.1", "port": port})


def _ready(device: ModbusDevice) -> None:
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            device.probe()
            return
        except DeviceUnreachable:
            time.sleep(0.05)
    raise AssertionError("simulator did not answer")


def _tamper(port: int, name: str, active: bool) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(json.dumps({"op": "tamper", "input": name, "active": active}).encode() + b"\n")
        assert json.loads(s.makefile().readline())["ok"]


@pytest.mark.parametrize("journal", [WINDOW, SMALL_RING], ids=["window", "small-ring"])
def test_layout_over_the_wire(tmp_path, journal):
    """Eight events into each layout: the window pages through blocks of 3; the ring of 5 wraps."""
    profile = _variant(tmp_path, journal)
    sim = start_sim(tmp_path / "state", profile)
    device = _device(profile, sim.port)
    try:
        _ready(device)
        t0 = datetime.now(UTC)
        for i in range(7):
            device.write("ct_ratio", 10 + i)
        _tamper(sim.control_port, "cover", True)
        entries = device.read_journal()
        kinds = [e.kind for e in entries]
        expected = [EventKind.POWER_UP, *[EventKind.CONFIG_CHANGE] * 7, EventKind.COVER_OPEN]
        if journal is SMALL_RING:  # overwrite_oldest: the newest five remain, in order
            assert [e.sequence for e in entries] == [5, 6, 7, 8, 9] and kinds == expected[-5:]
        else:  # stop at 50: all nine, read in three blocks
            assert [e.sequence for e in entries] == list(range(1, 10)) and kinds == expected
            assert [e.details["old"] for e in entries[2:8]] == [10, 11, 12, 13, 14, 15]
        assert all(abs((e.timestamp - t0).total_seconds()) < 5 for e in entries)
    finally:
        device.close()
        sim.kill()
