"""One job's `harness certify`, as a child process watched from outside: shared by the Celery task (a bench
host) and `harness fleet matrix --local` (a local pool), so both run exactly what a person runs.

The child is in a session of its own and dies with whoever runs it (PR_SET_PDEATHSIG); its simulators die
with it in turn, so a killed worker leaves no DUT holding a port. Progress comes from the run's progress
events (``HARNESS_PROGRESS_FILE``, kept beside the run folder, never inside the sealed one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.reporting.progress import PROGRESS_FILE_ENV

POLL_S = 0.5
STOP_GRACE_S = 10.0


def certify_argv(job: dict[str, Any], rig: Path, run_dir: Path) -> list[str]:
    """`harness certify` for the job; ``--resume`` when its run folder already holds a started run."""
    argv = [sys.executable, "-m", "harness", "certify"]
    if (run_dir / "run.json").exists():  # delivered again after a crash on this host: complete that run
        return [*argv, "--resume", str(run_dir)]
    argv += [str(rig), "--out", str(run_dir)]
    for option in ("suite", "check", "defect"):
        for value in job.get(option + "s", []):
            argv += [f"--{option}", value]
    if job.get("reruns") is not None:
        argv += ["--reruns", str(job["reruns"])]
    return argv


def follow(progress: Path) -> dict[str, Any]:
    """Done/total, the check running now and the verdicts so far, from the run's progress events."""
    state: dict[str, Any] = {"done": 0, "total": 0, "current": None, "verdicts": {}}
    verdicts: dict[str, str] = {}
    try:
        lines = progress.read_text(encoding="utf-8").splitlines()
    except OSError:
        return state
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line being written
        state["done"], state["total"] = event.get("done", 0), event.get("total", 0)
        if event.get("event") == "started":
            state["current"] = f"{event['check']} on {event['dut']}"
        else:
            state["current"] = None
            verdicts[f"{event['check']}/{event['dut']}"] = event["verdict"]
    for verdict in verdicts.values():
        state["verdicts"][verdict] = state["verdicts"].get(verdict, 0) + 1
    return state


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the run's process group (its simulators die with it), bounded: SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_certify(argv: list[str], progress: Path, log: Path,
                on_poll: Callable[[dict[str, Any]], bool] | None = None) -> int:
    """Run ``argv`` to its end; ``on_poll(progress)`` every half second, whose True stops the run. Exit code."""
    from harness.fault_injection.launcher import die_with_parent

    env = {**os.environ, PROGRESS_FILE_ENV: str(progress)}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=die_with_parent)
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
            if on_poll is not None and on_poll(follow(progress)):
                stop(proc)
    finally:
        if proc.poll() is None:
            stop(proc)
    return int(proc.returncode)


def summary(run_dir: Path) -> dict[str, Any]:
    """The run's verdicts in short: overall, per check and per clause (``dut:id`` -> verdict)."""
    verdicts = json.loads((run_dir / "verdicts.json").read_text(encoding="utf-8"))
    checks = {}
    for line in (run_dir / "checks.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        checks[f"{record['dut']}:{record['id']}"] = record["verdict"]
    clauses = {f"{dut}:{clause}": entry.get("verdict") for dut, block in verdicts.get("duts", {}).items()
               for clause, entry in block.get("clauses", {}).items()}
    return {"verdict": verdicts.get("verdict"), "certification_grade": verdicts.get("certification_grade"),
            "checks": checks, "clauses": clauses}
