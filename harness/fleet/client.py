"""The submitting side: `harness fleet submit | status | fetch | cancel`.

A rig is validated before anything is queued (a bad one is refused with its file and line), then sent
with every file it names (``harness.fleet.job``) to its bench's queue, or to the shared queue when all
its DUTs are simulated. Fetching unpacks the sealed run and checks its seal; a broken one is refused and
nothing of it is left behind.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from harness.fleet.app import TASK, app, broker_url, configure
from harness.fleet.errors import FleetError
from harness.fleet.job import SIMULATED_QUEUE, JobError, all_simulated, bench_queue, pack
from harness.fleet.state import Registry, reach
from harness.fleet.store import open_store

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
FINAL = ("SUCCESS", "FAILURE", "CANCELLED", "REVOKED")
WATCH_INTERVAL_S = 2.0


def connect(broker: str | None) -> Registry:
    url = broker_url(broker)
    configure(app, url)
    registry = Registry(url)
    reach(registry, url)
    return registry


def _request_problem(loaded: Any, suites: list[str], defects: list[str]) -> str | None:
    """What `harness certify` would refuse about the options, said before anything is queued."""
    from harness import registry
    from harness.certify import _known_defects

    unknown = [s for s in suites if s not in registry.suites()]
    if unknown:
        return f"unknown suite(s) {', '.join(unknown)}; suites: {', '.join(registry.suites())}"
    if defects and not any(d.launch for d in loaded.rig.duts.values()):
        return "--defect needs a simulated DUT (one with `launch`) in the rig"
    bad = [d for d in defects if d not in _known_defects()]
    return f"unknown defect(s) {', '.join(bad)}" if bad else None


def prepare(rig: Path, bench: str | None, suites: list[str], defects: list[str]) -> tuple[Any, dict[str, Any]]:
    """The rig loaded and its files packed, or a FleetError saying (with file:line) why it cannot be queued."""
    from harness.config import ConfigError, load_rig

    try:
        loaded = load_rig(rig)
    except ConfigError as exc:
        raise FleetError(str(exc)) from None
    problem = _request_problem(loaded, suites, defects)
    if problem is None and bench is None and not all_simulated(loaded):
        real = next(name for name, dut in loaded.rig.duts.items() if dut.launch is None)
        problem = (f"{rig}: DUT {real!r} is real equipment (no `launch`): name the bench wired to it with "
                   "--bench NAME")
    if problem:
        raise FleetError(problem)
    try:
        return loaded, pack(loaded)
    except JobError as exc:
        raise FleetError(f"cannot ship the rig: {exc}") from None


def enqueue(registry: Registry, loaded: Any, config: dict[str, Any], bench: str | None, *, suites: list[str],
            checks: list[str], defects: list[str], reruns: int | None) -> str:
    """Queue one job on its bench's queue (or the shared one); its id."""
    queue = bench_queue(bench) if bench else SIMULATED_QUEUE
    job_id = str(uuid.uuid4())
    job = {"config": config, "rig_name": loaded.rig.name, "suites": suites, "checks": checks, "defects": defects,
           "reruns": reruns}
    registry.add_job(job_id, {"rig": loaded.rig.name, "bench": bench or "", "queue": queue, "submitted": time.time(),
                              "files": len(config["files"]), "defects": defects})
    # The rig may hold the lab's passwords: events and Flower show this summary, never the job itself.
    app.send_task(TASK, args=[job], task_id=job_id, queue=queue, kwargsrepr="{}",
                  argsrepr=f"[rig {loaded.rig.name!r}: {len(config['files'])} file(s), checks {checks or 'all'}]")
    return job_id


def submit(rig: Path, bench: str | None, suites: list[str], checks: list[str], defects: list[str],
           reruns: int | None, broker: str | None) -> int:
    loaded, config = prepare(rig, bench, suites, defects)
    registry = connect(broker)
    job_id = enqueue(registry, loaded, config, bench, suites=suites, checks=checks, defects=defects, reruns=reruns)
    print(job_id)
    target = f"bench {bench}" if bench else "the shared queue of simulated rigs"
    print(f"queued rig {loaded.rig.name!r} ({len(config['files'])} file(s), SHA-256 each) for {target}",
          file=sys.stderr)
    reason = _waiting_reason(registry.served(), bench_queue(bench) if bench else SIMULATED_QUEUE)
    if reason:
        print(f"  note: {reason}; the job waits for one", file=sys.stderr)
    return EXIT_OK


def _waiting_reason(served: dict[str, dict[str, Any]], queue: str) -> str | None:
    if queue == SIMULATED_QUEUE:
        return None if any(w.get("simulated") for w in served.values()) else \
            "no worker takes simulated jobs (--simulated N)"
    bench = queue.removeprefix("bench.")
    return None if bench in served else f"no worker serves bench {bench}"


def job_state(job: str, record: dict[str, Any], served: dict[str, dict[str, Any]], cancelled: bool,
              running: bool = True) -> dict[str, Any]:
    """One row of the status table: job, rig, bench, state, progress, verdict. ``running``: the job's lease is
    held (a started job without one has lost its worker, and says so rather than its last progress)."""
    result = app.AsyncResult(job)
    state, info = result.state, result.info
    if (cancelled and state not in FINAL) or state == "REVOKED":  # queued: dropped when a worker takes it
        state = "CANCELLING" if state in ("STARTED", "PROGRESS") else "CANCELLED"  # running: stops within seconds
    meta = info if isinstance(info, dict) else {}
    bench = record.get("bench") or (f"(shared) {meta['bench']}" if meta.get("bench") else "(shared)")
    row = {"job": job, "rig": record.get("rig", "?"), "bench": bench,
           "state": state, "progress": "", "verdict": ""}
    if state == "PENDING":
        reason = _waiting_reason(served, record.get("queue", ""))
        row["state"] = f"WAITING — {reason}" if reason else "QUEUED"
    elif state in ("STARTED", "PROGRESS") and not running:
        queue = record.get("queue", "")
        again = (f"it runs again when bench {queue.removeprefix('bench.')}'s worker is back" if queue.startswith(
            "bench.") else "a live worker of the shared queue takes it back")
        row["state"] = f"STALLED — its worker stopped; {_waiting_reason(served, queue) or again}"
    if state in ("STARTED", "PROGRESS") and not meta.get("total"):
        row["progress"] = "starting"
    if meta.get("total"):
        row["progress"] = f"{meta.get('done', 0)}/{meta['total']}"
        if meta.get("current"):
            row["progress"] += f" {meta['current']}"
    counts = meta.get("verdicts") or {}
    so_far = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    if state == "SUCCESS":
        row["verdict"] = f"{meta.get('verdict')} ({so_far})" if so_far else str(meta.get("verdict"))
    elif state == "FAILURE":
        row["verdict"] = f"error: {info}"
    else:
        row["verdict"] = so_far
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    heads = ["job", "rig", "bench", "state", "progress", "verdict"]
    width = {h: max([len(h)] + [len(str(r[h])) for r in rows]) for h in heads[:-1]}
    lines = ["  ".join(h.upper().ljust(width.get(h, 0)) for h in heads).rstrip()]
    lines += ["  ".join(str(r[h]).ljust(width.get(h, 0)) for h in heads).rstrip() for r in rows]
    return "\n".join(lines)


def status(job: str | None, broker: str | None, watch: bool, interval: float = WATCH_INTERVAL_S) -> int:
    """The table once, or with ``watch`` refreshed every ``interval`` seconds until every job shown has finished
    (on a terminal in place, else one table after another)."""
    registry = connect(broker)
    live = watch and sys.stdout.isatty()
    while True:
        records = registry.jobs()
        if job is not None:
            if job not in records:
                raise FleetError(f"no job {job} was submitted to this broker")
            records = {job: records[job]}
        served = registry.served()
        rows = [job_state(j, r, served, registry.cancelled(j), registry.holder(j) is not None)
                for j, r in records.items()]
        print(("\033[H\033[J" if live else "") + (_table(rows) if rows else "no jobs"), flush=True)
        if not watch or all(r["state"] in FINAL for r in rows):
            return EXIT_OK
        time.sleep(interval)
        if not live:
            print()


def cancel(job: str, broker: str | None) -> int:
    registry = connect(broker)
    if registry.job(job) is None:
        raise FleetError(f"no job {job} was submitted to this broker")
    state = app.AsyncResult(job).state
    if state in FINAL:
        raise FleetError(f"job {job} has already finished ({state}); nothing to cancel")
    registry.cancel(job)
    app.control.revoke(job)
    print(f"cancel requested for {job}: a running job stops within seconds, a queued one is dropped when its turn "
          "comes")
    return EXIT_OK


def fetch(job: str, to: Path, broker: str | None, store_location: str | None) -> int:
    """Download the job's sealed run into ``to``, unpack it and verify its seal; refuse a broken one."""
    from harness.reporting.seal import verify

    registry = connect(broker)
    if registry.job(job) is None:
        raise FleetError(f"no job {job} was submitted to this broker")
    result = app.AsyncResult(job)
    meta = result.info if result.state == "SUCCESS" and isinstance(result.info, dict) else None
    location = store_location or (meta or {}).get("store")
    if not location:
        raise FleetError(f"job {job} has no result yet (state {result.state})")
    store = open_store(location)
    meta = meta or store.meta(job)
    if meta is None:
        raise FleetError(f"job {job} has no result in {store.location} yet (state {result.state})")
    to.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=to, prefix=".fetch-") as tmp:
        archive = store.get(job, Path(tmp) / f"{job}.tar.gz")
        if archive is None:
            raise FleetError(f"the result store {store.location} holds no archive of job {job}")
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != meta.get("archive_sha256"):
            print(f"harness fleet fetch: refused: the archive's SHA-256 {digest} is not the one the worker stored "
                  f"({meta.get('archive_sha256')})", file=sys.stderr)
            return EXIT_FAIL
        unpacked = Path(tmp) / "run"
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        folders = [p for p in unpacked.iterdir() if p.is_dir()]
        if len(folders) != 1:
            raise FleetError(f"the archive of job {job} does not hold one run folder")
        check = verify(folders[0])
        if not check.ok:
            print(f"harness fleet fetch: refused: the seal of job {job} does not hold:", file=sys.stderr)
            for problem in check.problems:
                print(f"  - {problem}", file=sys.stderr)
            return EXIT_FAIL
        dest = to / folders[0].name
        if dest.exists():
            raise FleetError(f"{dest} already exists; fetch into another --to")
        shutil.move(str(folders[0]), dest)
    print(f"{dest}: seal OK — {check.files} evidence files, signed by {check.subject}; verdict {meta.get('verdict')} "
          f"(bench {meta.get('bench') or '(shared)'}, worker {meta.get('worker')})")
    return EXIT_OK
