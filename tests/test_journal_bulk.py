"""Bulk provocation of journal events (issue 12, item 7): KZ-97-04/05/06 provoke events from any declared
action the device logs and the bench can undo — on a plain meter with no writable setting and no
config_change code, alternate clock sets that leave the clock right."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from harness.resources import builtin_rig
from harness.simulators.defects import METER_DEFECTS
from tests.conftest import DATA, certify_defect, checks_of, run_cli

CLOCK_ONLY = DATA / "variant-clock-only.yaml"
BULK_CHECKS = ("KZ-97-04", "KZ-97-05", "KZ-97-06")


def _rig(tmp_path: Path, profile: Path = CLOCK_ONLY) -> Path:
    data = yaml.safe_load(builtin_rig().read_text(encoding="utf-8"))
    data["duts"]["meter"]["profile"] = str(profile)
    path = tmp_path / f"rig-{profile.stem}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_meter_with_only_a_logged_writable_clock_is_judged_in_bulk(tmp_path):
    out = tmp_path / "out"
    res = run_cli("certify", str(_rig(tmp_path)), "--out", str(out), "--reruns", "0",
                  *(arg for check in BULK_CHECKS for arg in ("--check", check)))
    records = checks_of(out)
    assert {c: records[c]["verdict"] for c in BULK_CHECKS} == dict.fromkeys(BULK_CHECKS, "PASS"), \
        res.stdout + res.stderr
    held = next(m for m in records["KZ-97-05"]["measurements"] if m["name"] == "entries held when full")
    assert held["measured"] == 60 and "clock set" in held["note"], held
    kept = next(m for m in records["KZ-97-06"]["measurements"] if m["name"] == "generated events still held")
    assert kept["measured"] >= 55, kept


def test_clock_set_provocation_catches_a_journal_that_stops_when_full(tmp_path):
    """The seeded journal_stops_when_full (declared overwrite_oldest) fails KZ-97-05 through clock sets too."""
    run = certify_defect(tmp_path, METER_DEFECTS["journal_stops_when_full"], rig=_rig(tmp_path))
    assert "provoked events held" in run.record["reason"], run.record["reason"]


@pytest.mark.slow
def test_without_setting_or_clock_a_tamper_input_provokes_in_bulk_and_without_any_it_is_inconclusive(tmp_path):
    plain = {"extends": str(CLOCK_ONLY), "clock": {"writable": False},
             "modbus": {"write_protection": None, "journal": {"codes": {5: None, 46: None}}}}
    (tmp_path / "tamper.yaml").write_text(yaml.safe_dump(plain), encoding="utf-8")
    nothing = {"extends": "tamper.yaml", "modbus": {"journal": {"codes": {40: None, 41: None, 42: None}}}}
    (tmp_path / "nothing.yaml").write_text(yaml.safe_dump(nothing), encoding="utf-8")
    for name, verdict, said in (("tamper", "PASS", "cover input switched and released alternately"),
                                ("nothing", "INCONCLUSIVE", "no writable clock with a clock_set code")):
        rig = _rig(tmp_path, tmp_path / f"{name}.yaml")
        out = tmp_path / f"out-{name}"
        run_cli("certify", str(rig), "--out", str(out), "--reruns", "0", "--check", "KZ-97-05")
        record = checks_of(out)["KZ-97-05"]
        assert record["verdict"] == verdict and said in json.dumps(record), record


class _SecondsClock:
    """A device clock with whole-second registers (a read or a set truncates), ``offset`` from UTC."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def read_clock(self) -> SimpleNamespace:
        return SimpleNamespace(value=(datetime.now(UTC) + self.offset).replace(microsecond=0))

    def set_clock(self, value: datetime) -> None:
        time.sleep(0.015)  # the write's latency (a clock re-read before each set would lose it every time)
        self.offset = value.replace(microsecond=0) - datetime.now(UTC)


def test_clock_set_provocation_leaves_the_clock_right_and_follows_a_fast_forward():
    from harness.conformance.journal.bulk import _ClockSteps

    device = _SecondsClock()
    steps = _ClockSteps(device)
    worst = timedelta(0)
    for i in range(200):  # a journal's capacity of sets: the error must not add up
        steps.step(i)
        worst = max(worst, abs(device.offset))
    steps.restore()
    # one truncation of the reading the offset is measured from, one of each set: < 2 s, however many sets
    bound = timedelta(seconds=2.1)
    assert worst < bound and abs(device.offset) < bound, (worst, device.offset)
    for i in range(10):  # a day of device time passes between the sets (KZ-97-06): it is kept
        device.offset += timedelta(days=1)
        steps.step(i)
    steps.restore()
    assert abs(device.offset - timedelta(days=10)) < bound, device.offset
