"""The job as a bench host runs it: unpack the shipped rig, run `harness certify` on it, store the sealed run.

The run is `harness certify` in a child process — the code path a person runs, nothing re-implemented —
in the job's own folder (``WORK/JOB/run``). The child dies with the worker (PR_SET_PDEATHSIG), and its
simulators die with it, so a killed worker leaves no DUT holding a port. When the job is delivered again
after such a crash, a run folder already here is completed with ``harness certify --resume`` (its finished
checks kept); a result already stored is returned as it is: one job, one result, one set of verdicts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from celery.exceptions import Ignore

from harness.fleet.app import TASK, app
from harness.fleet.job import JobError, unpack
from harness.fleet.state import Registry
from harness.fleet.store import open_store

BENCH_ENV, STORE_ENV, WORK_ENV = "HARNESS_FLEET_BENCH", "HARNESS_FLEET_STORE", "HARNESS_FLEET_WORK"
POLL_S = 0.5
CANCEL_GRACE_S = 10.0


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


def _certify_argv(job: dict[str, Any], rig: Path, run_dir: Path) -> list[str]:
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


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the run's process group (its simulators die with it: PR_SET_PDEATHSIG), bounded."""
    for sig, wait in ((signal.SIGTERM, CANCEL_GRACE_S), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@app.task(bind=True, name=TASK)
def certify_job(self: Any, job: dict[str, Any]) -> dict[str, Any]:
    from harness.fault_injection.launcher import die_with_parent
    from harness.reporting.bundle import BundleRefused, bundle

    job_id: str = self.request.id
    bench = os.environ.get(BENCH_ENV, "")
    store = open_store(os.environ[STORE_ENV])
    registry = Registry(app.conf.broker_url)
    if registry.cancelled(job_id):
        self.update_state(state="CANCELLED", meta={"bench": bench})
        raise Ignore()
    stored = store.meta(job_id)
    if stored is not None:  # finished and stored before a crash: the one result stays the one result
        return stored
    job_dir = Path(os.environ[WORK_ENV]) / job_id
    try:
        rig = unpack(job["config"], job_dir / "config")
    except JobError as exc:
        raise RuntimeError(f"the shipped rig does not unpack: {exc}") from None
    run_dir = job_dir / f"{job.get('rig_name', 'run')}-{job_id}"  # the folder's name in the archive
    progress, log = job_dir / "progress.jsonl", job_dir / "certify.log"
    argv = _certify_argv(job, rig, run_dir)
    where = {"bench": bench, "worker": self.request.hostname, "resumed": "--resume" in argv}
    env = {**os.environ, "HARNESS_PROGRESS_FILE": str(progress)}
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=die_with_parent)
    shown: dict[str, Any] | None = None
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
            state = follow(progress)
            if state != shown:
                self.update_state(state="PROGRESS", meta={**where, **state})
                shown = state
            if registry.cancelled(job_id):
                _stop(proc)
                self.update_state(state="CANCELLED", meta={**where, **state})
                raise Ignore()
    finally:
        if proc.poll() is None:
            _stop(proc)
    if proc.returncode not in (0, 1) or not (run_dir / "verdicts.json").exists():
        raise RuntimeError(f"harness certify exited {proc.returncode}: {_tail(log)}")
    verdicts = json.loads((run_dir / "verdicts.json").read_text(encoding="utf-8"))
    archive = job_dir / f"{job_id}.tar.gz"
    try:
        bundle(run_dir, archive)
    except BundleRefused as exc:
        raise RuntimeError(f"the run is not sealed: {exc}") from None
    meta = {"job": job_id, "rig": job.get("rig_name", ""), **where, "verdict": verdicts.get("verdict"),
            "certification_grade": verdicts.get("certification_grade"), "exit_code": proc.returncode,
            **{k: v for k, v in follow(progress).items() if k in ("done", "total", "verdicts")},
            "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(), "store": store.location,
            "finished": time.time()}
    if not store.put(job_id, archive, meta):
        meta = store.meta(job_id) or meta
    shutil.rmtree(job_dir, ignore_errors=True)  # the store holds the evidence now
    return meta
