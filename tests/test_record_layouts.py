"""Record layouts seen in real meters (issue 12): a ring whose only bookkeeping is a counter of entries
ever written (u16 or u32, wrapping), and journal sequence numbers that wrap at 16 bits — declared,
served by the simulators, read by the driver, judged by KZ-97-04 across the wrap."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from harness.config import ConfigError, load_profile
from harness.config.modbus_types import RegisterTable
from harness.devices.modbus_journal import read_load_profile
from harness.events import EventKind
from harness.resources import builtin_rig
from harness.simulators.defects import METER_DEFECTS
from tests.conftest import DATA, certify_defect, checks_of, run_cli, start_sim

VARIANT = DATA / "variant-counter-ring.yaml"
U16 = 1 << 16
OFFSET_S = 5 * 3600.0  # EM4's utc_offset


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _child(tmp_path: Path, name: str, modbus: dict) -> Path:
    """The counter-ring variant with more changes (a profile that extends it)."""
    return _write(tmp_path, name, yaml.safe_dump({"extends": str(VARIANT), "modbus": modbus}))


# ---- declaration ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("layout", "message"), [
    ({"written": None, "head": {"address": 0x0F00}, "count": {"address": 0x0F00}}, "declares it as `written:"),
    ({"head": {"address": 0x0F08}}, "has no `head` or `count`"),
    ({"written": None}, "declares `head` and `count`, or one `written`"),
])
def test_counter_ring_declarations(tmp_path, layout, message):
    with pytest.raises(ConfigError) as err:
        load_profile(_child(tmp_path, "bad.yaml", {"journal": {"layout": layout}}))
    assert message in str(err.value) and "bad.yaml:" in str(err.value), err.value


def test_a_u16_counter_needs_a_capacity_that_divides_its_wrap(tmp_path):
    with pytest.raises(ConfigError, match="capacity 400 does not divide"):
        load_profile(_child(tmp_path, "u16.yaml", {"journal": {"capacity": 400}}))
    u32 = {"journal": {"capacity": 400, "layout": {"written": {"address": 0x0F00, "type": "u32"}}}}
    assert load_profile(_child(tmp_path, "u32.yaml", u32)).modbus.journal.capacity == 400


# ---- load profile, in-process: the reader against what the simulator serves, across the wrap ----------
def test_load_profile_counter_ring_across_the_counter_wrap(tmp_path):
    from tests.test_interval_data import PERIOD, HookedMeter, _advance_to, _control

    path = _child(tmp_path, "lp.yaml", {"load_profile": {"capacity": 16, "layout": {
        "written": {"address": 0x1FF0, "type": "u16", "word_order": "little"}}}})
    profile = load_profile(path)
    spec = profile.modbus.load_profile
    sim = HookedMeter(profile, tmp_path / "state")

    def read(table: RegisterTable, address: int, count: int) -> list[int]:
        regs = [0] * count
        assert asyncio.run(sim.action(3, address, address, count, regs, None)) is None
        return regs

    def read_back() -> list[int | None]:
        records = read_load_profile(spec, read, lambda a, v: None, profile.clock.tzinfo, 64)
        assert [r.end.timestamp() for r in records] == [r.end for r in sim.load_profile.records]
        return [r.sequence for r in records]

    _advance_to(sim, sim.load_profile.open_end + 7 * PERIOD + 300)  # 8 records: the counter says 8, not full
    assert read(RegisterTable.HOLDING, 0x1FF0, 1) == [sim.load_profile.written] and len(read_back()) == 8
    _control(sim, op="advance", seconds=12 * PERIOD)  # 20 written: full, head 4
    first = sim.load_profile.records[0].seq
    assert read_back() == list(range(first, first + 16))
    sim.load_profile.written += U16 - 32  # the same meter 65 504 records later (same head), 16 before the wrap
    _control(sim, op="advance", seconds=18 * PERIOD)
    assert read(RegisterTable.HOLDING, 0x1FF0, 1)[0] < spec.capacity  # wrapped: the counter alone says "2"
    first = sim.load_profile.records[0].seq
    assert read_back() == list(range(first, first + 16))  # ... and the ring is read whole, in order


# ---- journal, over the wire: a meter that has logged 65 530 entries in its life ------------------------
def age_journal(state_dir: Path, written: int, capacity: int) -> None:
    """Journal NVM of a meter aged in the field: a full ring of hourly config changes, ``written`` in all."""
    state_dir.mkdir(parents=True, exist_ok=True)
    now = time.time() + OFFSET_S
    entries = [{"seq": written - capacity + 1 + i, "t": now - (capacity - i) * 3600.0, "kind": "config_change",
                "details": {"subject": 0x30, "old": 40, "new": 30}} for i in range(capacity)]
    state = {"entries": entries, "next_seq": written + 1, "head": written % capacity, "written": written,
             "alive": None}
    (state_dir / "journal.json").write_text(json.dumps(state), encoding="utf-8")


@pytest.mark.parametrize("aged", [False, True], ids=["new-meter", "across-the-wrap"])
def test_journal_counter_ring_over_the_wire(tmp_path, aged):
    from tests.test_journal import _device, _ready

    if aged:
        age_journal(tmp_path / "state", U16 - 6, 64)
    sim = start_sim(tmp_path / "state", VARIANT)
    device = _device(VARIANT, sim.port)
    try:
        _ready(device)
        for i in range(9):
            device.write("ct_ratio", 10 + i)
        entries = device.read_journal()
        seqs = [e.sequence for e in entries]
        if aged:  # power-up is #65531; #65535 -> #0 -> ... #4, and the counter reads 4 (< capacity): full
            assert len(entries) == 64 and seqs[-10:] == [65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3, 4]
            assert seqs[0] == (65531 + 9 - 63) and all((b - a) % U16 == 1 for a, b in itertools.pairwise(seqs))
        else:
            assert seqs == list(range(1, 11))
        assert [e.kind for e in entries[-10:]] == [EventKind.POWER_UP, *[EventKind.CONFIG_CHANGE] * 9]
    finally:
        device.close()
        sim.kill()


# ---- KZ-97-04 across the wrap: the golden meter passes, a real gap at the wrap is caught ---------------
def _rig(tmp_path: Path, state: Path) -> Path:
    """The built-in rig on the counter-ring variant, its meter keeping its NVM in ``state`` (a meter aged in the
    field before the run: a run's own folder must start empty)."""
    data = yaml.safe_load(builtin_rig().read_text(encoding="utf-8"))
    meter = data["duts"]["meter"]
    meter["profile"] = str(VARIANT)
    meter["launch"]["command"] = [str(state) if arg == "{state_dir}" else arg for arg in meter["launch"]["command"]]
    return _write(tmp_path, "rig.yaml", yaml.safe_dump(data, sort_keys=False))


def test_sequence_check_passes_a_journal_across_the_wrap(tmp_path):
    rig = _rig(tmp_path, tmp_path / "aged")
    age_journal(tmp_path / "aged", U16 - 6, 64)
    res = run_cli("certify", str(rig), "--out", str(tmp_path / "out"), "--check", "KZ-97-04", "--reruns", "0")
    record = checks_of(tmp_path / "out")["KZ-97-04"]
    assert res.returncode == 0 and record["verdict"] == "PASS", record
    steps = next(m for m in record["measurements"] if m["name"] == "sequence steps other than +1")
    assert re.fullmatch(r"64 entries #65\d{3}\.\.#\d{1,2}", steps["note"]), steps  # judged across the wrap


def test_sequence_check_catches_a_gap_across_the_wrap(tmp_path):
    """journal_sequence_gap skips a number after every 5th entry logged: power-up #65531 is the 1st, so
    #65535 is followed by #1 — the gap is the wrap's own #0."""
    rig = _rig(tmp_path, tmp_path / "aged")
    age_journal(tmp_path / "aged", U16 - 6, 64)
    run = certify_defect(tmp_path, METER_DEFECTS["journal_sequence_gap"], rig=rig)
    assert "first: #65535 -> #1" in run.record["reason"], run.record["reason"]


@pytest.mark.parametrize("erased", [0x0000, 0xFFFF])
def test_the_counter_is_taken_as_wrapped_only_when_the_next_slot_holds_an_entry(erased):
    """Held = min(counter, capacity) while the slot the counter points at was never written (erased memory
    reads all 0x0000 or all 0xFFFF); the whole ring once it holds an entry (the counter has wrapped)."""
    from harness.devices.modbus_journal import _from_counter

    store = load_profile(VARIANT).modbus.journal  # 64 slots of 10 registers from 0x1000
    written: set[int] = set()

    def read(_table: RegisterTable, address: int, count: int) -> list[int]:
        slot = (address - 0x1000) // 10
        return [7] * count if slot in written else [erased] * count

    written.update(range(5))
    assert _from_counter(store, 5, read) == (5, 5)  # a new meter: five entries
    written.update(range(64))
    assert _from_counter(store, 5, read) == (5, 64)  # 65 541 written: the counter wrapped, the ring is full
    assert _from_counter(store, 70, read) == (6, 64)
