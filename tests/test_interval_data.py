"""Interval data (cl. 31) end to end and piece by piece.

Through the CLI: the golden meter passes the interval_data suite, every interval defect fails the check
the catalogue names with the symptom that check measures, the variant profile (window layout, other
types, no sequence numbers) passes, and a profile declaring a 30-minute period fails KZ-31-01.
In-process (no certify, no sockets): the simulator closes intervals at every boundary across an
``advance`` and across power cuts and clock sets, hands each record to its hook only once it is on
disk, and the harness's reader decodes what the simulator serves in a wrapped ring and in a window.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import ConfigError, load_profile
from harness.config.modbus_map import RegisterTable
from harness.config.profile import Profile
from harness.devices.modbus_journal import read_load_profile
from harness.intervals import IntervalFlag
from harness.quantities import EnergyChannel
from harness.resources import builtin_profile, builtin_rig
from harness.simulators.defects import METER_DEFECTS
from harness.simulators.intervals import IntervalRecord, IntervalStatus
from harness.simulators.meter import MeterSimulator
from harness.simulators.regimage import encode_clock, encode_point
from tests.conftest import (
    DATA,
    METER_DEFECTS_GROUP,
    METER_GOLDEN_GROUP,
    VARIANT_GOLDEN_GROUP,
    checks_of,
    run_cli,
)

CHECKS = [f"KZ-31-{n:02d}" for n in range(1, 6)]
INTERVAL_DEFECTS = sorted(name for name, d in METER_DEFECTS.items() if d.clause == "31")
SYMPTOM = {  # what the failing check must say it measured
    "interval_period_mismatch": "spacings other than the declared period",
    "interval_gap": "intervals missing (gaps)",
    "interval_misaligned": "end times off a period boundary",
    "interval_increments_wrong": "sum of the day's increments",
    "interval_power_cut_unflagged": "interval with the power cut: power_failed: no flags",
    "interval_clock_set_unflagged": "interval with the clock set: clock_changed: no flags",
}
LOAD = {"active_import": 3000.0, "active_export": 500.0, "reactive_import": 1200.0, "reactive_export": 300.0}
EM4 = load_profile(builtin_profile("tek-sim-em4.yaml"))
PERIOD = 900
A_PLUS_PER_INTERVAL = 750  # Wh: 3000 W for 15 minutes




# ---- the simulator, in-process -------------------------------------------------------------------
class HookedMeter(MeterSimulator):
    """The golden meter with a hook that checks each record is on disk when it is handed over."""

    def __init__(self, profile: Profile, state_dir: Path, defects: set[str] | None = None) -> None:
        self.hooked: list[IntervalRecord] = []
        super().__init__(profile, state_dir, dict(LOAD), defects or set(), 95000001)

    def on_interval_closed(self, record: IntervalRecord) -> None:
        rows = json.loads(self.load_profile.store.path.read_text())["records"]
        assert any(row[0] == record.seq for row in rows), f"record #{record.seq} handed over before it was saved"
        self.hooked.append(record)


def _control(sim: MeterSimulator, **req: Any) -> dict[str, Any]:
    return asyncio.run(sim.control(req))


def _utc_now(sim: MeterSimulator) -> float:
    return sim.timeline.rtc() - sim.utc_offset_s


def _advance_to(sim: MeterSimulator, utc: float) -> None:
    _control(sim, op="advance", seconds=max(0.0, utc - _utc_now(sim)))


def _power_cycle(sim: MeterSimulator, off_s: float, defects: set[str] | None = None) -> HookedMeter:
    """SIGKILL as the simulator sees it (nothing more runs), ``off_s`` of wall time without power."""
    path = sim.nvm.path
    state = json.loads(path.read_text())
    state["timeline"]["wall"] -= off_s
    path.write_text(json.dumps(state))
    return HookedMeter(sim.profile, sim.nvm.dir, defects)


def test_a_day_of_advance_closes_every_interval_in_milliseconds(tmp_path):
    sim = HookedMeter(EM4, tmp_path)
    lp = sim.load_profile
    start = lp.open_end
    totals = dict(lp.open_totals)
    t0 = time.perf_counter()
    _control(sim, op="advance", seconds=86400)
    took = time.perf_counter() - t0
    assert took < 0.25, f"a day of advance took {took:.3f} s"
    records = lp.records
    assert [r.end for r in records] == [start + i * PERIOD for i in range(96)]
    assert [r.seq for r in records] == list(range(1, 97)) and all(r.status == 0 for r in records)
    assert all(r.increments["active_import"] == A_PLUS_PER_INTERVAL for r in records[1:])  # the first is partial
    for channel in totals:  # increments are differences of the register totals: nothing lost, nothing twice
        assert sum(r.increments[channel] for r in records) == records[-1].totals[channel] - totals[channel]
    assert sim.hooked == records and lp.status()["records"] == 96


def test_power_up_closes_the_interrupted_interval_and_fills_the_outage(tmp_path):
    sim = HookedMeter(EM4, tmp_path)
    boundary = sim.load_profile.open_end + PERIOD
    _advance_to(sim, boundary - 300)  # two thirds into the interval ending at `boundary`
    sim = _power_cycle(sim, 3600)  # back at boundary + 3300: three intervals wholly inside the outage
    lp = sim.load_profile
    closed = sim.hooked[-4:]
    assert [r.end for r in closed] == [boundary + i * PERIOD for i in range(4)]
    assert all(r.status == IntervalStatus.POWER_FAILED for r in closed)
    assert abs(closed[0].increments["active_import"] - 500) <= 2  # 600 s metered before the cut
    assert all(v == 0 for r in closed[1:] for v in r.increments.values())  # no gaps: zero, flagged
    assert lp.open_end == boundary + 4 * PERIOD and lp.open_status == IntervalStatus.POWER_FAILED
    _control(sim, op="advance", seconds=2 * PERIOD)
    after, clean = lp.records[-2:]
    assert after.status == IntervalStatus.POWER_FAILED and clean.status == 0  # in progress at power-up: flagged
    assert abs(after.increments["active_import"] - 250) <= 2 and clean.increments["active_import"] == 750


def test_short_cut_flags_only_the_interval_it_falls_in(tmp_path):
    sim = HookedMeter(EM4, tmp_path)
    boundary = sim.load_profile.open_end + PERIOD
    _advance_to(sim, boundary - 600)
    held = len(sim.load_profile.records)
    sim = _power_cycle(sim, 1.0)
    lp = sim.load_profile
    assert len(lp.records) == held and lp.open_end == boundary  # nothing closed at power-up
    _control(sim, op="advance", seconds=2 * PERIOD)
    cut, clean = lp.records[-2:]
    assert (cut.end, cut.status, clean.status) == (boundary, IntervalStatus.POWER_FAILED, 0)
    assert abs(cut.increments["active_import"] - A_PLUS_PER_INTERVAL) <= 3  # energy kept across the cut
    unflagged = _power_cycle(sim, 1.0, {"interval_power_cut_unflagged"})
    assert unflagged.load_profile.open_status == 0


def test_hook_gets_the_last_batch_again_after_a_power_cut(tmp_path):
    sim = HookedMeter(EM4, tmp_path)
    _control(sim, op="advance", seconds=3 * PERIOD)
    last = [r.seq for r in sim.hooked]
    sim = _power_cycle(sim, 1.0)  # the hook may not have finished that batch before the cut
    assert [r.seq for r in sim.hooked] == last  # offered again, in order, still on disk
    _control(sim, op="advance", seconds=PERIOD)
    assert sim.hooked[-1].seq == last[-1] + 1


def _set_clock(sim: MeterSimulator, utc: float) -> None:
    clock, protection = sim.profile.modbus.clock, sim.profile.modbus.write_protection
    if protection is not None:  # the lab's password opens a write session first, as the driver does
        unlock = protection.unlock
        sim.set_unlock_password("1")
        password = encode_point(unlock.as_point(), unlock.password_value("1"))
        assert asyncio.run(sim.action(16, unlock.address, unlock.address, len(password), [0] * len(password),
                                      password)) is None
    regs = encode_clock(clock, utc + sim.utc_offset_s, sim.utc_offset_s)
    assert asyncio.run(sim.action(16, clock.address, clock.address, len(regs), [0] * len(regs), regs)) is None


def test_clock_set_flags_the_interval_and_moves_the_boundaries(tmp_path):
    sim = HookedMeter(EM4, tmp_path)
    lp = sim.load_profile
    boundary = lp.open_end + PERIOD
    _advance_to(sim, boundary - 600)
    _set_clock(sim, boundary + 2 * PERIOD + 100)  # forward past two boundaries: filled, flagged, no gap
    ends = [r.end for r in lp.records[-3:]]
    assert ends == [boundary, boundary + PERIOD, boundary + 2 * PERIOD]
    assert all(r.status == IntervalStatus.CLOCK_CHANGED for r in lp.records[-3:])
    assert lp.open_status == IntervalStatus.CLOCK_CHANGED
    _set_clock(sim, boundary - 450)  # backward: the interval in progress now ends at `boundary` again
    assert lp.open_end == boundary
    _control(sim, op="advance", seconds=2 * PERIOD)
    assert lp.records[-2].end == boundary and lp.records[-2].status == IntervalStatus.CLOCK_CHANGED
    assert lp.records[-1].status == 0


def test_fast_forward_past_the_capacity_hands_over_every_record_from_disk(tmp_path):
    profile = load_profile(_variant(tmp_path, builtin_profile("tek-sim-em4.yaml"), SMALL_RING, "ring.yaml"))
    sim = HookedMeter(profile, tmp_path / "state")  # a ring of 5; the hook checks each record is on disk
    _control(sim, op="advance", seconds=20 * PERIOD)
    assert [r.seq for r in sim.hooked] == list(range(1, 21))
    assert [r.seq for r in sim.load_profile.records] == list(range(16, 21))
    sim = _power_cycle(sim, 30 * PERIOD)  # an outage longer than the ring: it keeps the newest five intervals
    assert [r.seq for r in sim.load_profile.records] == list(range(46, 51))  # #21 (cut) .. #50 all closed
    assert all(r.status == IntervalStatus.POWER_FAILED and not any(r.increments.values())
               for r in sim.load_profile.records)
    assert [r.seq for r in sim.hooked] == list(range(46, 51))


# ---- the harness's reader against what the simulator serves -----------------------------------------
def _variant(tmp_path: Path, base: Path, load_profile: dict[str, Any], name: str) -> Path:
    doc = yaml.safe_load(base.read_text())
    doc["modbus"]["load_profile"].update(load_profile)
    doc.pop("documentation", None)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


SMALL_RING = {"capacity": 5, "entry": {
    "size": 16, "sequence": {"offset": 14, "type": "u16"}, "end_time": {"offset": 0, "encoding": "ymdhms"},
    "status": {"offset": 6, "type": "u32", "word_order": "little"},
    "active_import": {"offset": 8, "type": "i32", "word_order": "little", "scale": 0.001, "unit": "kWh"},
    "reactive_export": {"offset": 10, "type": "u32", "scale": 10, "unit": "varh"}}}


@pytest.mark.parametrize("case", ["builtin-ring", "small-ring-wrapped", "variant-window"])
def test_reader_decodes_what_the_simulator_serves(tmp_path, case):
    path = {"builtin-ring": builtin_profile("tek-sim-em4.yaml"),
            "small-ring-wrapped": _variant(tmp_path, builtin_profile("tek-sim-em4.yaml"), SMALL_RING, "ring.yaml"),
            "variant-window": DATA / "variant-em2.yaml"}[case]
    profile = load_profile(path)
    spec = profile.modbus.load_profile
    sim = HookedMeter(profile, tmp_path / "state")
    _advance_to(sim, sim.load_profile.open_end + 7 * PERIOD + 300)  # 8 records; 300 s into the 9th interval
    _set_clock(sim, _utc_now(sim) + 30)

    def read(table: RegisterTable, address: int, count: int) -> list[int]:
        regs = [0] * count
        fc = 4 if table == RegisterTable.INPUT else 3
        assert asyncio.run(sim.action(fc, address, address, count, regs, None)) is None
        return regs

    def write(address: int, values: list[int]) -> None:
        assert asyncio.run(sim.action(16, address, address, len(values), [0] * len(values), values)) is None

    read_back = read_load_profile(spec, read, write, profile.clock.tzinfo, profile.modbus.max_registers_per_request)
    held = sim.load_profile.records
    assert len(read_back) == len(held) == min(8, spec.capacity)
    for got, rec in zip(read_back, held, strict=True):
        assert got.end == datetime.fromtimestamp(rec.end, UTC)
        assert got.sequence == (rec.seq if spec.entry.sequence else None)
        for channel, field in spec.entry.channels().items():
            assert abs(got.increments[channel] - rec.increments[channel.value]) < field.factor
        assert set(got.increments) == set(spec.entry.channels())
    assert all(not r.flags for r in read_back)
    _control(sim, op="advance", seconds=PERIOD)  # the interval with the clock set closes
    flagged = read_load_profile(spec, read, write, profile.clock.tzinfo, profile.modbus.max_registers_per_request)
    assert flagged[-1].flags == {IntervalFlag.CLOCK_CHANGED}
    assert flagged[-1].status == 1 << spec.status_bits[IntervalFlag.CLOCK_CHANGED]
    assert EnergyChannel.ACTIVE_IMPORT in flagged[-1].increments


@pytest.mark.parametrize(("change", "message"), [
    ({"layout": {"type": "ring", "head": {"address": 0x0F02}, "count": {"address": 0x0F03}, "base": 0x1F00}},
     "journal entries and load profile entries overlap"),
    ({"status_bits": {"power_failed": 16, "clock_changed": 5, "invalid": 2}}, "outside the 16-bit status word"),
    ({"capture_period_s": 7000}, "does not divide a day"),
    ({"entry": {"size": 13, "end_time": {"offset": 0, "encoding": "unix"}, "status": {"offset": 2},
                "reactive_import": {"offset": 3, "type": "u32", "unit": "Wh"}}}, "not an energy unit in varh"),
    ({"entry": {"size": 4, "end_time": {"offset": 0, "encoding": "unix"}, "status": {"offset": 1},
                "active_import": {"offset": 2, "type": "u32"}, "sequence": {"offset": 3}}}, "overlap"),
])
def test_profile_errors_name_file_and_line(tmp_path, change, message):
    path = _variant(tmp_path, builtin_profile("tek-sim-em4.yaml"), change, "bad.yaml")
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    text = str(err.value)
    assert message in text and f"{path}:" in text, text
    assert err.value.problems[0].line is not None


# ---- end to end, through the CLI ----------------------------------------------------------------
def test_every_interval_defect_has_a_symptom():
    assert set(SYMPTOM) == set(INTERVAL_DEFECTS)
    assert {METER_DEFECTS[d].expect for d in INTERVAL_DEFECTS} == set(CHECKS)


@pytest.mark.xdist_group(METER_GOLDEN_GROUP)
def test_golden_meter_passes_the_interval_data_suite(meter_golden_run):
    """Read from the golden certification of the built-in meter rig (conftest: meter_golden_run)."""
    out = meter_golden_run.out
    meter_golden_run.passed()
    records = meter_golden_run.checks("interval_data")
    assert sorted(records) == CHECKS
    assert all(r["verdict"] == "PASS" and r["measurements"] for r in records.values()), records
    chart = records["KZ-31-02"]["charts"][0]
    assert chart["kind"] == "step" and len(chart["series"]) == 4
    assert all(len(points) == 96 for points in chart["series"].values())
    clauses = json.loads((out / "verdicts.json").read_text())["duts"]["meter"]["clauses"]
    assert all(clauses[c]["verdict"] == "PASS" for c in ("30", "31", "60", "80")), clauses


@pytest.mark.xdist_group(METER_DEFECTS_GROUP)
@pytest.mark.parametrize("defect", INTERVAL_DEFECTS)
def test_interval_defect_fails_its_check(meter_defects, defect):
    run = meter_defects.run(METER_DEFECTS[defect])
    assert "31" in run.record["clauses"] and SYMPTOM[defect] in run.record["reason"], run.record


@pytest.mark.xdist_group(VARIANT_GOLDEN_GROUP)
def test_variant_profile_passes(variant_golden_run):
    """Read from the whole certification of the variant rig (conftest: variant_golden_run)."""
    variant_golden_run.passed()
    records = variant_golden_run.checks("interval_data")
    assert sorted(records) == CHECKS and all(r["verdict"] == "PASS" for r in records.values()), records


def test_declared_30_minute_period_fails_kz_31_01(tmp_path):
    profile = _variant(tmp_path, builtin_profile("tek-sim-em4.yaml"), {"capture_period_s": 1800}, "em4-30min.yaml")
    rig = yaml.safe_load(builtin_rig().read_text())
    rig["duts"]["meter"]["profile"] = str(profile)
    rig_path = tmp_path / "rig.yaml"
    rig_path.write_text(yaml.safe_dump(rig))
    out = tmp_path / "out"
    res = run_cli("certify", str(rig_path), "--out", str(out), "--check", "KZ-31-01", "--reruns", "0")
    assert res.returncode == 1, res.stdout + res.stderr
    record = checks_of(out)["KZ-31-01"]
    assert record["verdict"] == "FAIL" and "declared capture period: 1800 s (limit ≤ 900)" in record["reason"]
    assert len(record["measurements"]) == 1  # the declaration alone decides it
