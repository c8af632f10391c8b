"""The job as a bench host runs it: unpack the shipped rig, run `harness certify` on it, store the sealed run.

The run is `harness certify` in a child process (``harness.fleet.runner``) — the code path a person runs,
nothing re-implemented — in the job's own folder (``WORK/JOB/RIG-JOB``, the folder the archive holds). When
the job is delivered again after a crash, a run folder already here is completed with ``harness certify
--resume`` (its finished checks kept); a result already stored is returned as it is: one job, one result,
one set of verdicts. While it runs, the job holds its lease (``harness.fleet.lease``); a run that loses it
(another worker took the job, thinking this one dead) stops without a verdict.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from celery.exceptions import Ignore

from harness.fleet.app import TASK, app
from harness.fleet.job import JobError, unpack
from harness.fleet.lease import JobLease
from harness.fleet.runner import certify_argv, follow, run_certify, summary, tail
from harness.fleet.state import Registry
from harness.fleet.store import open_store

BENCH_ENV, STORE_ENV, WORK_ENV = "HARNESS_FLEET_BENCH", "HARNESS_FLEET_STORE", "HARNESS_FLEET_WORK"


@app.task(bind=True, name=TASK)
def certify_job(self: Any, job: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
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
    lease = JobLease(registry, job_id, self.request.hostname)
    holder = lease.acquire()
    if holder is not None:  # delivered twice; the job runs on a live worker: that run gives the verdict
        raise Ignore()
    try:
        return _run(self, job, job_id, bench, store, registry, lease, started)
    finally:
        lease.release()


def _run(self: Any, job: dict[str, Any], job_id: str, bench: str, store: Any, registry: Registry, lease: JobLease,
         started: float) -> dict[str, Any]:
    from harness.reporting.bundle import BundleRefused, bundle

    job_dir = Path(os.environ[WORK_ENV]) / job_id
    try:
        rig = unpack(job["config"], job_dir / "config")
    except JobError as exc:
        raise RuntimeError(f"the shipped rig does not unpack: {exc}") from None
    run_dir = job_dir / f"{job.get('rig_name', 'run')}-{job_id}"  # the folder's name in the archive
    progress, log = job_dir / "progress.jsonl", job_dir / "certify.log"
    argv = certify_argv(job, rig, run_dir)
    where = {"bench": bench, "worker": self.request.hostname, "resumed": "--resume" in argv, "started": started}
    shown: list[dict[str, Any]] = []

    def on_poll(state: dict[str, Any]) -> bool:
        if not shown or state != shown[-1]:
            self.update_state(state="PROGRESS", meta={**where, **state})
            shown.append(state)
        return registry.cancelled(job_id) or lease.lost.is_set()

    code = run_certify(argv, progress, log, on_poll)
    if lease.lost.is_set():  # another worker runs the job now: its run gives the one verdict
        raise Ignore()
    if registry.cancelled(job_id):
        self.update_state(state="CANCELLED", meta={**where, **follow(progress)})
        shutil.rmtree(job_dir, ignore_errors=True)
        raise Ignore()
    if code not in (0, 1) or not (run_dir / "verdicts.json").exists():
        raise RuntimeError(f"harness certify exited {code}: {tail(log)}")
    certified = time.time()
    archive = job_dir / f"{job_id}.tar.gz"
    try:
        bundle(run_dir, archive)
    except BundleRefused as exc:
        raise RuntimeError(f"the run is not sealed: {exc}") from None
    meta = {"job": job_id, "rig": job.get("rig_name", ""), **where, **summary(run_dir), "exit_code": code,
            **{k: v for k, v in follow(progress).items() if k in ("done", "total", "verdicts")},
            "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(), "store": store.location,
            "certified": certified}
    meta["finished"] = time.time()
    try:
        kept = store.put(job_id, archive, meta)
    except OSError as exc:  # nothing lost: the sealed run, its archive and its record stay on this host
        record = job_dir / f"{job_id}.json"
        record.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        raise RuntimeError(f"the result store {store.location} refused the result ({exc.strerror or exc}); the "
                           f"sealed run stays in {run_dir}; copy {archive.name} and {record.name} from {job_dir} "
                           "into the store to make it the job's result") from None
    if not kept:
        meta = store.meta(job_id) or meta
    meta = {**meta, "stored": time.time()}  # in the job's result only: when the store had it
    shutil.rmtree(job_dir, ignore_errors=True)  # the store holds the evidence now
    return meta
