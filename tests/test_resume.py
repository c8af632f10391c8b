"""A run killed at any moment (kill -9 of the harness itself) keeps every finished check, and
`harness certify --resume OUTDIR` completes it to the same verdicts as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

# Two suites, so the resumed run crosses a suite boundary; of the journal its first three checks (~3 s, two of them
# cut power): the kill lands after three finished checks with seconds to spare, and the resumed run keeps the run's
# own selection (run.json). The journal's storage checks (KZ-97-04…07, ~7.5 s) add nothing a resume must show.
SUITES = ["--suite", "registers", "--suite", "journal",
          *(a for c in ("KZ-95-01", "KZ-95-02", "KZ-95-03", "KZ-95-04", "KZ-97-01", "KZ-97-02", "KZ-97-03")
            for a in ("--check", c))]


def _verdict_map(out: Path) -> dict[str, object]:
    v = json.loads((out / "verdicts.json").read_text())
    return {dut: {clause: (c["verdict"], sorted((k["id"], k["verdict"]) for k in c["checks"]), c["not_run"])
                  for clause, c in info["clauses"].items()} for dut, info in v["duts"].items()}


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_verdicts_of_an_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    res = run_cli("certify", "--out", str(whole), *SUITES)
    assert res.returncode == 0, res.stdout + res.stderr
    expected = _verdict_map(whole)
    total = _lines(whole / "checks.jsonl")

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "certify", "--out", str(killed), *SUITES],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _lines(killed / "checks.jsonl") < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the harness only: its simulators go with it (PDEATHSIG)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    finished_before = _lines(killed / "checks.jsonl")
    assert 3 <= finished_before < total
    assert not (killed / "certificate.json").exists()

    res = run_cli("certify", "--resume", str(killed))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Resuming" in res.stdout
    assert _verdict_map(killed) == expected
    assert _lines(killed / "checks.jsonl") == total  # nothing run twice, nothing left out
    assert run_cli("verify", str(killed)).returncode == 0


def test_resume_refuses_what_it_cannot_resume(tmp_path):
    res = run_cli("certify", "--resume", str(tmp_path))
    assert res.returncode == 2 and "no run to resume" in res.stderr
    res = run_cli("certify", "--resume", str(tmp_path), "--suite", "registers")
    assert res.returncode == 2 and "give only --resume OUTDIR" in res.stderr
