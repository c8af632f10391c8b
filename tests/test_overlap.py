"""Passive windows overlap (harness/overlap.py): checks declared ``passive`` run at the same time on one DUT,
each with its own connection, record, start and finish; nothing else runs meanwhile; the rig conditions a
check names (``unless=``) keep it alone; a run killed in the middle of a group resumes without losing or
repeating one of its checks.

The device runs use tests/data/passive-rig.yaml: a simulated meter without time control (its clock drifts in
wall time) and a soak without link faults, so the drift window (KZ-95-11) and the soak (KZ-67-01) are both
passive there. On the built-in rig neither is (see the first test)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import checks_of, run_cli, verdicts_of

from harness import overlap
from harness.config import load_rig
from harness.reporting.records import CheckRecord
from harness.resources import builtin_rig

DATA = Path(__file__).parent / "data"
PASSIVE_RIG = DATA / "passive-rig.yaml"
BOTH = ("--check", "KZ-95-11", "--check", "KZ-67-01")


# ---- which checks overlap: no device -------------------------------------------------------------------
class _Mark:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class _Item:
    def __init__(self, name: str, dut: str = "meter", passive: dict | None = None, documentary: bool = False,
                 fixtures: tuple[str, ...] = ("dut", "check")) -> None:
        self.name, self.dut, self.fixturenames = name, dut, list(fixtures)
        self.marks = {"passive": _Mark(**passive)} if passive is not None else {}
        if documentary:
            self.marks["documentary"] = _Mark()

    def get_closest_marker(self, name: str) -> _Mark | None:
        return self.marks.get(name)

    def __repr__(self) -> str:
        return self.name


def _rig(*, control: bool = False, faults: bool = False, serial: bool = False) -> Any:
    transport = SimpleNamespace(serial=object() if serial else None)
    dut = SimpleNamespace(control=object() if control else None, transport=transport)
    return SimpleNamespace(duts={"meter": dut, "heat": dut},
                           availability=SimpleNamespace(link_faults=[object()] if faults else []))


def test_a_dut_s_passive_checks_stand_together_at_the_first_one_s_place():
    a, b, c, d, e = (_Item("a"), _Item("b", passive={}), _Item("c"), _Item("d", passive={"unless": "link_faults"}),
                     _Item("e", dut="heat", passive={}))
    items = [a, b, c, d, e]
    groups = overlap.arrange(items, _rig(), lambda it: it.dut)
    assert groups == [[b, d]]  # heat's lone passive check runs as before
    assert items == [a, b, d, c, e]  # nothing runs between b and d


def test_what_keeps_a_passive_check_alone():
    rig = _rig()
    assert overlap.why_not_overlapped(_Item("x"), rig, "meter") == "not declared passive"
    assert "documentary" in overlap.why_not_overlapped(_Item("x", passive={}, documentary=True), rig, "meter")
    assert "tmp_path" in overlap.why_not_overlapped(_Item("x", passive={}, fixtures=("dut", "tmp_path")), rig,
                                                    "meter")
    assert "serial" in overlap.why_not_overlapped(_Item("x", passive={}), _rig(serial=True), "meter")
    drift = _Item("drift", passive={"unless": "time_control"})
    soak = _Item("soak", passive={"unless": ("link_faults",)})
    assert overlap.why_not_overlapped(drift, rig, "meter") is None
    assert "time control" in overlap.why_not_overlapped(drift, _rig(control=True), "meter")
    assert overlap.why_not_overlapped(soak, _rig(control=True), "meter") is None
    assert "link_faults" in overlap.why_not_overlapped(soak, _rig(faults=True), "meter")
    assert overlap.arrange([drift, soak], _rig(faults=True), lambda it: it.dut) == []
    assert overlap.unknown_conditions(_Mark(unless=("time_control", "moon_phase"))) == ["moon_phase"]


def test_on_the_built_in_rig_neither_window_is_passive():
    """Its meter has time control (the drift check fast-forwards a day instead of waiting 20 s) and its soak
    cuts the main link (KZ-73-01): overlapping either would disturb the other checks, so none overlaps."""
    rig = load_rig(builtin_rig()).rig
    assert overlap.CONDITIONS["time_control"](rig, "meter")
    assert overlap.CONDITIONS["link_faults"](rig, "meter")


# ---- on a device ---------------------------------------------------------------------------------------
def _certify(out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness", "certify", str(PASSIVE_RIG), "--out", str(out),
                             *BOTH, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return out


def test_drift_window_and_soak_overlap_each_judging_what_it_judged_alone(tmp_path):
    runs = {name: _certify(tmp_path / name, *args) for name, args in
            (("drift", ("--defect", "clock_drift", "--reruns", "0")),
             ("lossy", ("--defect", "intermittent_unavailable", "--reruns", "0")))}
    logs = {name: _finish(proc) for name, proc in runs.items()}
    drift, lossy = checks_of(tmp_path / "drift"), checks_of(tmp_path / "lossy")
    for checks, log in ((drift, logs["drift"]), (lossy, logs["lossy"])):
        soak, clock = checks["KZ-67-01"], checks["KZ-95-11"]
        assert max(soak["started"], clock["started"]) < min(soak["finished"], clock["finished"]), log  # overlapped
        assert soak["finished"] - soak["started"] >= 5 and clock["finished"] - clock["started"] >= 4  # full windows
        assert "KZ-67-01" in log and "KZ-95-11" in log  # a progress line each
    # each still catches its defect on its clause, with the other running beside it
    assert drift["KZ-95-11"]["verdict"] == "FAIL", drift["KZ-95-11"]
    assert verdicts_of(tmp_path / "drift")["duts"]["meter"]["clauses"]["95"]["verdict"] == "FAIL"
    assert drift["KZ-67-01"]["verdict"] == "PASS", logs["drift"]
    note = next(m["note"] for m in drift["KZ-67-01"]["measurements"] if m["name"] == "availability")
    answered, attempts = map(int, re.match(r"(\d+) of (\d+) attempts", note).groups())
    assert answered == attempts >= 100, note  # the soak still resolves 1 %
    assert lossy["KZ-67-01"]["verdict"] == "FAIL", lossy["KZ-67-01"]
    assert verdicts_of(tmp_path / "lossy")["duts"]["meter"]["clauses"]["67"]["verdict"] == "FAIL"
    assert lossy["KZ-95-11"]["verdict"] != "FAIL", lossy["KZ-95-11"]  # the golden clock is not blamed


@pytest.mark.slow
def test_a_run_killed_in_the_middle_of_a_group_resumes_each_check_once(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "certify", str(PASSIVE_RIG), "--out", str(out),
                             *BOTH], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "availability").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # both windows under way
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the harness only: its simulator goes with it (PDEATHSIG)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert not (out / "checks.jsonl").exists() or not (out / "checks.jsonl").read_text().strip()
    res = run_cli("certify", "--resume", str(out))
    ids = [line.split('"id":"')[1].split('"')[0] for line in (out / "checks.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["KZ-67-01", "KZ-95-11"], res.stdout + res.stderr  # none lost, none twice
    checks = checks_of(out)
    assert max(r["started"] for r in checks.values()) < min(r["finished"] for r in checks.values())
    assert sorted(p.name for p in (out / "availability").iterdir()) == ["meter-1.jsonl", "meter-2.jsonl"]


def test_overlapped_checks_keep_their_own_reruns_flaky_verdicts_and_records(tmp_path):
    out, suite = tmp_path / "out", DATA / "flaky_suite"  # named so that the harness's own run does not collect it
    res = subprocess.run([sys.executable, "-m", "pytest", str(suite / "passive_checks.py"), "--rig", str(PASSIVE_RIG),
                          "--harness-out", str(out), "-p", "no:cacheprovider", "--confcutdir", str(suite),
                          "-c", os.devnull, "--rootdir", str(suite), "-q"],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                         env={**os.environ, "TEK_FLAKY_DIR": str(tmp_path)})
    lines = (out / "checks.jsonl").read_text().splitlines()
    assert len(lines) == 4, res.stdout + res.stderr
    records = {r.id: r for r in map(CheckRecord.model_validate_json, lines)}
    flaky, failing, alone, passing = (records[i] for i in ("KZ-95-95", "KZ-95-96", "KZ-95-97", "KZ-95-98"))
    assert flaky.verdict == "FLAKY" and len(flaky.attempts) == 1 and (tmp_path / "passive_flaky").read_text() == "2"
    assert failing.verdict == "FAIL" and len(failing.attempts) == 2  # rig default reruns: 2 → three attempts
    assert passing.verdict == "PASS" and alone.verdict == "PASS"
    group = (flaky, failing, passing)
    assert max(r.started for r in group) < min(r.finished for r in group)  # the three ran at the same time
    assert failing.finished - failing.started >= 3 * 0.9  # its three attempts, one after the other
    assert alone.started >= max(r.finished for r in group)  # and nothing else ran meanwhile
    assert [r.id for r in records.values()][-1] == "KZ-95-97"  # the group stood at its first check's place
