"""A device's declarations may tighten a limit but never loosen it past the bound the standards set
(conformance/bounds.py, issue 14): a clock 7 minutes a day fast fails whatever accuracy the profile claims,
journal stamps an hour off fail whatever tolerance it claims, a clock that stops while unpowered fails the
power-cut check, and the offset of a clock the harness cannot set is judged, not just recorded."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from conftest import checks_of, run_cli

from harness.conformance.bounds import CLOCK_DRIFT, EVENT_TIMESTAMP, clock_cut_off_time
from harness.conformance.clock_checks import clock_drift_within_declared, clock_readable_and_settable
from harness.devices.api import ClockReading
from harness.reporting.records import Check
from harness.resources import builtin_profile, builtin_rig
from harness.verdicts import Inconclusive


def _loose_rig(tmp_path: Path, change: dict[str, Any]) -> Path:
    """The built-in rig with its meter's profile changed by ``change`` ({section: {field: value}})."""
    doc = yaml.safe_load(builtin_profile("tek-sim-em4.yaml").read_text())
    for section, fields in change.items():
        target = doc
        for key in section.split("."):
            target = target[key]
        target.update(fields)
    doc.pop("documentation")
    (tmp_path / "loose.yaml").write_text(yaml.safe_dump(doc))
    rig = builtin_rig().read_text().replace("../device_profiles/tek-sim-em4.yaml", str(tmp_path / "loose.yaml"))
    (tmp_path / "rig.yaml").write_text(rig)
    return tmp_path / "rig.yaml"


def _certify(tmp_path: Path, rig: Path, defect: str, check_id: str) -> dict:
    out = tmp_path / "out"
    res = run_cli("certify", str(rig), "--out", str(out), "--defect", defect, "--check", check_id, "--reruns", "0")
    assert res.returncode == 1, res.stdout + res.stderr
    return checks_of(out)[check_id]


def test_a_clock_7_minutes_a_day_fast_fails_whatever_accuracy_the_profile_declares(tmp_path):
    record = _certify(tmp_path, _loose_rig(tmp_path, {"clock": {"max_drift_s_per_day": 1000.0}}),
                      "clock_drift", "KZ-95-11")
    assert record["verdict"] == "FAIL", record
    limits = {m["name"]: m for m in record["measurements"]}
    assert "looser than the bound" in limits["clock.max_drift_s_per_day declared"]["note"]
    assert "IEC 62054-21" in limits["clock.max_drift_s_per_day declared"]["limit"]
    assert limits["clock drift"]["limit"] == f"≤ {round(CLOCK_DRIFT.value / 86400 * 1e6, 6)}"


def test_journal_stamps_an_hour_off_fail_whatever_tolerance_the_profile_declares(tmp_path):
    record = _certify(tmp_path, _loose_rig(tmp_path, {"modbus.journal": {"timestamp_tolerance_s": 7200}}),
                      "journal_time_skew", "KZ-97-01")
    assert record["verdict"] == "FAIL", record
    assert "timestamp error" in record["reason"]
    assert any(m["name"] == "timestamp_tolerance_s declared" and m["measured"] == 7200
               for m in record["measurements"])


def test_a_tighter_declaration_is_kept_and_a_looser_one_set_aside_once():
    check = Check("KZ-97-01", "t", "journal", ["97"], "meter")
    assert EVENT_TIMESTAMP.limit(check, 3.0) == 3.0 and check.measurements == []
    assert EVENT_TIMESTAMP.limit(check, 7200.0) == EVENT_TIMESTAMP.value
    assert EVENT_TIMESTAMP.limit(check, 7200.0) == EVENT_TIMESTAMP.value
    assert [m.name for m in check.measurements] == ["timestamp_tolerance_s declared"]


def test_the_power_cut_outlasts_twice_the_clock_tolerance():
    assert clock_cut_off_time(1.0, 2.0) > 2 * 2.0
    assert clock_cut_off_time(30.0, 2.0) == 30.0  # a longer cut the rig asks for is kept


# ---- the clock checks' judgement against a device that says what we tell it to ------------------------------
@dataclass
class _Clock:
    """A device clock ``offset`` seconds from the harness's, read with a millisecond clock."""

    offset: float
    step_harness_clock: float = 0.0  # the harness's own clock is stepped by this after the first fix
    reads: int = 0

    def read_clock(self) -> ClockReading:
        self.reads += 1
        t = time.time()
        return ClockReading(datetime.fromtimestamp(t + self.offset, UTC), t, t + 1e-4, 0.001)


@dataclass
class _Time:
    fast: bool = False
    clock: _Clock | None = None
    forwarded: list[float] = field(default_factory=list)

    def elapse(self, seconds: float) -> None:
        self.forwarded.append(seconds)
        if self.clock is not None:  # the device's world moves on; its clock with it
            self.clock.offset += seconds

    def world_offset_s(self) -> float:
        return sum(self.forwarded)


def _dut(clock: _Clock, *, writable: bool, time_control: _Time | None = None) -> Any:
    profile = SimpleNamespace(clock=SimpleNamespace(writable=writable, max_drift_s_per_day=0.5),
                              modbus=SimpleNamespace(clock=object()), maps_clock=True)
    timing = SimpleNamespace(clock_tolerance_s=2.0, clock_drift_window_s=0.2)
    return SimpleNamespace(device=clock, profile=profile, timing=timing, time=time_control or _Time())


@pytest.mark.parametrize("offset,verdict", [(0.0, True), (3600.0, False), (-30.0, False)])
def test_the_offset_of_a_clock_the_harness_cannot_set_is_judged(offset, verdict):
    check = Check("KZ-95-09", "t", "clock", ["95"], "meter")
    with contextlib.suppress(AssertionError):
        clock_readable_and_settable(_dut(_Clock(offset), writable=False), check, "95")
    judged = [m for m in check.measurements if m.name.startswith("offset to UTC")]
    assert len(judged) == 1 and judged[0].passed is verdict, check.measurements


def test_a_non_settable_clock_is_judged_against_the_simulated_world_it_lives_in():
    clock = _Clock(0.0)
    world = _Time(fast=True, clock=clock)
    world.elapse(7200.0)  # the harness fast-forwarded the simulator by two hours before this check
    check = Check("KZ-95-09", "t", "clock", ["95"], "meter")
    clock_readable_and_settable(_dut(clock, writable=False, time_control=world), check, "95")
    assert not check.failures, check.measurements


def test_drift_is_inconclusive_when_the_harness_clock_steps_back(monkeypatch):
    clock = _Clock(0.0)
    real_time = time.time
    t0 = real_time()
    monkeypatch.setattr(time, "time", lambda: real_time() - (5.0 if real_time() > t0 + 0.1 else 0.0))
    check = Check("KZ-95-11", "t", "clock", ["95"], "meter")
    with pytest.raises(Inconclusive, match="stepped"):
        clock_drift_within_declared(_dut(clock, writable=True), check, "95")


def test_a_cut_longer_than_the_rig_lets_the_harness_wait_is_inconclusive():
    from harness.conformance.clock_checks import clock_continues_after_power_cut

    dut = _dut(_Clock(0.0), writable=False)
    dut.timing.clock_tolerance_s, dut.timing.max_wall_wait_s = 100.0, 120.0
    dut.power, dut.spec = object(), SimpleNamespace(power=SimpleNamespace(off_time_s=1.0))
    with pytest.raises(Inconclusive, match="max_wall_wait_s"):
        clock_continues_after_power_cut(dut, Check("KZ-95-10", "t", "clock", ["95"], "meter"), "95")
