"""The availability suite (cl. 67, 73) end to end, as a user runs it, and the arithmetic behind its figures.

Four certify runs go at once (each is mostly waiting on its soak): the golden meter passes KZ-67-01,
``intermittent_unavailable`` fails it with every unanswered poll in the evidence, the dual-interface
meter rig (main link through the proxy) passes KZ-73-01 under a cut and a blackhole whose windows are
excluded, and a run killed with SIGKILL mid-soak leaves every poll it made in its jsonl. ~20 s wall.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, certify_defect, checks_of
from pydantic import ValidationError

from harness.config.availability import AvailabilitySoak, DeclaredAvailability
from harness.conformance.availability.figures import (
    PollSeries,
    Window,
    availability,
    fault_recoveries,
    histogram,
    outage_recoveries,
    overlapping,
)
from harness.reporting.i18n import language
from harness.reporting.texts import from_data
from harness.simulators.defects import METER_DEFECTS

SOAK = {"duration_s": 10, "interval_s": 0.08}  # 125 polls: enough to resolve 1 %
FAULTS = [{"at_s": 3, "kind": "cut", "for_s": 2}, {"at_s": 7, "kind": "blackhole", "for_s": 2}]


# ---- the rig's block and the figures (no DUT) ---------------------------------------------------------------------
def test_rig_block_keeps_the_rules_minimum_and_a_sane_schedule():
    assert AvailabilitySoak().target_pct == 99.0
    assert AvailabilitySoak(target_pct=99.5).target_pct == 99.5  # a lab may raise it
    with pytest.raises(ValidationError, match="below the Rules' 99 %"):
        AvailabilitySoak(target_pct=98)
    with pytest.raises(ValidationError, match="after the soak ends"):
        AvailabilitySoak(duration_s=10, link_faults=[{"at_s": 9, "kind": "cut", "for_s": 2}])
    with pytest.raises(ValidationError, match="overlap"):
        AvailabilitySoak(duration_s=60, link_faults=[{"at_s": 10, "kind": "cut", "for_s": 5},
                                                     {"at_s": 12, "kind": "blackhole", "for_s": 1}])
    with pytest.raises(ValidationError):
        AvailabilitySoak(link_faults=[{"at_s": 1, "kind": "unplug", "for_s": 1}])
    assert AvailabilitySoak().interval_for(None) == 1.0
    assert AvailabilitySoak().interval_for(DeclaredAvailability(polling_interval_s=5)) == 5.0
    assert AvailabilitySoak(interval_s=0.5).interval_for(DeclaredAvailability(polling_interval_s=5)) == 0.5


def _series(outcomes: str, interval: float = 0.2, timeout: float = 1.0) -> PollSeries:
    """Polls on a grid: '.' answered in 10 ms, 'x' unanswered after ``timeout`` (skipping the polls due meanwhile)."""
    polls, t = PollSeries(), 0.0
    for c in outcomes:
        rtt = 0.01 if c == "." else timeout
        due = int(rtt / interval + 1e-9) + 1  # as the soak counts them: itself and every poll due before it ended
        polls.add(t, t + rtt, None if c == "." else "timeout", due)
        t += due * interval
    return polls


def test_a_dropped_request_counts_once_an_outage_for_its_length():
    dropped = _series("....x....")
    a = availability(dropped, overlapping(dropped, []))
    assert (a.attempts, a.answered, a.failed) == (9, 8, 1)
    down = _series("..xxx..")  # down for three timeouts of 1 s at a 0.2 s interval: ~16 polls' worth
    a = availability(down, overlapping(down, []))
    assert (a.polls, a.failed, a.attempts, a.answered) == (7, 3, 7 + 2 * 5, 4)  # 2 timeouts followed by another
    (outage,) = outage_recoveries(down, overlapping(down, []))
    assert outage.failed_polls == 3 and outage.seconds == pytest.approx(3 * 1.2 + 0.01)


def test_fault_windows_are_excluded_and_recovery_is_timed_from_their_end():
    polls = _series("....xxxx.....")
    window = Window("cut", polls.start[4] - 0.05, polls.end[6] + 0.01)  # the harness's cut: polls 4-6
    excluded = overlapping(polls, [window])
    assert list(excluded) == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    a = availability(polls, excluded)
    assert (a.excluded_polls, a.excluded_failed, a.polls, a.failed) == (3, 3, 10, 1)
    (r,) = fault_recoveries(polls, [window])
    assert r.failed_polls == 1 and r.seconds == pytest.approx(polls.end[8] - window.end)


def test_histogram_bins_are_round():
    bins = histogram([0.4, 1.1, 1.9, 7.2, 29.0], max_bins=10)  # 29/10 = 2.9 → bins of 5
    assert bins == [(2.5, 3), (7.5, 1), (12.5, 0), (17.5, 0), (22.5, 0), (27.5, 1)]


def test_the_defect_is_catalogued_for_the_meter():
    assert METER_DEFECTS["intermittent_unavailable"].expect == "KZ-67-01"


# ---- end to end ----------------------------------------------------------------------------------------------------
def _rig(tmp_path: Path, name: str, source: str, availability_block: dict) -> Path:
    rig = yaml.safe_load((ROOT / "rigs" / source).read_text())
    for dut in rig["duts"].values():
        dut["profile"] = str((ROOT / "rigs" / dut["profile"]).resolve())
    rig["availability"] = availability_block
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(rig))
    return path


def _certify(rig: Path, out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness", "certify", str(rig), "--out", str(out), "--suite",
                             "availability", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the harness and the simulators it launched
            proc.wait(timeout=10)
    return proc.returncode, out




def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _measured(check: dict, name: str) -> dict:
    return next(m for m in check["measurements"] if m["name"].startswith(name))


@pytest.mark.slow
def test_soak_passes_the_golden_meter_fails_the_defect_and_recovers_after_link_faults(tmp_path):
    meter = _rig(tmp_path, "meter", "sim-meter.yaml", SOAK)
    dual = _rig(tmp_path, "dual", "sim-meter-dual.yaml", {"duration_s": 14, "interval_s": 0.08, "link_faults": FAULTS})
    runs = {"golden": _certify(meter, tmp_path / "golden"),
            "defect": _certify(meter, tmp_path / "defect", "--defect", "intermittent_unavailable"),
            "faults": _certify(dual, tmp_path / "faults", "--reruns", "0")}
    results = {name: _finish(proc) for name, proc in runs.items()}

    code, log = results["golden"]
    assert code == 1, log  # this soak schedules no link fault: cl. 73's recovery is untested, not "does not apply"
    checks = checks_of(tmp_path / "golden")
    assert checks["KZ-67-01"]["verdict"] == "PASS", log
    assert checks["KZ-73-01"]["verdict"] == "INCONCLUSIVE", checks["KZ-73-01"]
    assert "availability.link_faults" in checks["KZ-73-01"]["reason"]
    evidence = _lines(tmp_path / "golden" / "availability" / "meter-1.jsonl")
    polls = [e for e in evidence if e["type"] == "poll"]
    assert evidence[0]["type"] == "start" and evidence[-1]["type"] == "end" and evidence[-1]["status"] == "finished"
    assert 110 <= len(polls) <= 125 and all(p["ok"] for p in polls)  # 10 s at 0.08 s
    assert len(evidence[0]["quantities"]) == 23  # every declared point of the TEK-SIM-EM4 profile
    (hist,) = [c for c in checks["KZ-67-01"]["charts"] if c["kind"] == "histogram"]
    assert sum(y for _, y in hist["series"]["polls"]) == len(polls)

    code, log = results["defect"]
    assert code == 1, log
    caught = checks_of(tmp_path / "defect")["KZ-67-01"]
    assert caught["verdict"] == "FAIL" and _measured(caught, "availability")["measured"] < 99, caught
    assert len(caught["attempts"]) == 2  # re-runs re-judge the one soak: no second soak was made
    assert sorted(p.name for p in (tmp_path / "defect" / "availability").iterdir()) == ["meter-1.jsonl"]
    failed = [e for e in _lines(tmp_path / "defect" / "availability" / "meter-1.jsonl")
              if e["type"] == "poll" and not e["ok"]]
    assert failed and all("no valid answer" in e["error"] and e["rtt_ms"] >= 1000 for e in failed)  # timeouts
    unanswered = _measured(caught, "polls unanswered")
    assert unanswered["measured"] == len(failed)
    with language("ru"):  # the driver's own words about each unanswered poll, translated like the rest of the note
        note_ru = from_data(unanswered["texts"]["note"]).localized()
    assert "нет правильного ответа" in note_ru and "no valid answer" not in note_ru, note_ru

    code, log = results["faults"]
    assert code == 0, log
    checks = checks_of(tmp_path / "faults")
    assert checks["KZ-67-01"]["verdict"] == "PASS" and checks["KZ-73-01"]["verdict"] == "PASS", log
    recovered = [m for m in checks["KZ-73-01"]["measurements"] if "answered again" in m["name"]]
    assert len(recovered) == 2 and all(m["passed"] and m["measured"] <= 1.08 for m in recovered), recovered
    evidence = _lines(tmp_path / "faults" / "availability" / "meter-1.jsonl")
    windows = evidence[-1]["windows"]
    assert [w[0] for w in windows] == ["cut", "blackhole"]
    inside = [e for e in evidence if e["type"] == "poll"
              and any(b <= e["t"] + e["rtt_ms"] / 1e3 and e["t"] <= end for _, b, end in windows)]
    assert inside and not all(e["ok"] for e in inside)  # the faults took …
    assert evidence[-1]["excluded_polls"] == len(inside) and evidence[-1]["failed"] == 0  # … and are not the DUT's
    faults = [json.loads(line) for line in (tmp_path / "faults" / "faults.jsonl").read_text().splitlines()]
    assert sum(1 for f in faults if f.get("kind") == "link" and f["phase"] == "begin") == 2


def test_a_killed_soak_leaves_what_it_measured(tmp_path):
    rig = _rig(tmp_path, "long", "sim-meter.yaml", {"duration_s": 120, "interval_s": 0.1})
    out = tmp_path / "out"
    proc = _certify(rig, out, "--reruns", "0")
    evidence = out / "availability" / "meter-1.jsonl"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and \
                (not evidence.exists() or evidence.read_bytes().count(b'"type":"poll"') < 20):
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the harness only: its simulator goes with it (PDEATHSIG)
        proc.wait(timeout=10)
    finally:
        _finish(proc, timeout=10)
    lines = _lines(evidence)  # every line whole: each is written and flushed as one piece
    polls = [e for e in lines if e["type"] == "poll"]
    assert lines[0]["type"] == "start" and len(polls) >= 20 and lines[-1]["type"] == "poll"
    assert [p["n"] for p in polls] == list(range(len(polls))) and all(p["ok"] for p in polls)
    assert not (out / "checks.jsonl").exists() or "KZ-67-01" not in (out / "checks.jsonl").read_text()


@pytest.mark.slow
def test_a_meter_slow_to_recover_after_a_link_fault_fails_cl73(tmp_path):
    """The built-in rig's link-fault schedule (a cut on the main transport's proxy) catches a meter whose network
    module restarts after a silence: KZ-73-01 FAILs."""
    run = certify_defect(tmp_path, METER_DEFECTS["slow_link_recovery"])
    assert "answered again after it ended" in run.record["reason"], run.record["reason"]
