"""`harness fleet worker --bench NAME`: the Celery workers of one bench host.

A bench is one set of equipment, so its own queue is served one job at a time, by one worker (it holds
the bench's lock in Redis). With ``--simulated N`` the host also takes up to N jobs at once from the shared
queue of all-simulated rigs, in a second Celery worker (a separate pool, so a simulated job never waits for
the bench and the bench never runs two jobs). Both are ``celery worker`` processes with a thread pool (a job
is a `harness certify` child process to watch), started by this one and dying with it (PR_SET_PDEATHSIG).

On start the bench's jobs that a killed worker left unacknowledged are put back on its queue at once: the
bench has one worker, so a job unacknowledged on its queue belongs to a worker that is gone. While it runs,
it also puts back the jobs of its queues whose worker has gone silent (their lease lapsed,
``harness.fleet.lease``), on whichever host that was: they restart here, not after Redis's visibility
timeout of days.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.fleet.app import BROKER_ENV, app, broker_url, configure, shown
from harness.fleet.errors import FleetError
from harness.fleet.job import SIMULATED_QUEUE, bench_queue
from harness.fleet.state import LOCK_TTL_S, Registry, alive_here, dead_here, fleet_host, lease_s, reach
from harness.fleet.store import open_store
from harness.fleet.task import BENCH_ENV, STORE_ENV, WORK_ENV

STOP_GRACE_S = 30.0
ENDED = ("SUCCESS", "CANCELLED", "REVOKED")  # the job will not run again: nothing here to resume


def lost(registry: Registry, job: str, delivered: float | None, now: float) -> bool:
    """The job's worker is gone: its lease has lapsed (or names a dead process of this host), and it was handed
    out longer ago than a lease lasts (a job just handed out has not taken its lease yet)."""
    holder = registry.holder(job)
    if holder is not None:
        return dead_here(holder)
    if delivered is None or now - delivered < lease_s():
        return False
    return not alive_here(registry.runner(job))  # a process of ours, alive, only late in renewing: it keeps it


def reclaim(registry: Registry, bench: str, simulated: bool, starting: bool = False) -> int:
    """Put back at the head of their queue (redelivered, as after a visibility timeout) the unacknowledged jobs
    of the queues this host serves whose worker is gone (``lost``); on starting, every job of this bench too —
    it has one worker, this one. The jobs it returns; the count."""
    queues = {bench_queue(bench)} | ({SIMULATED_QUEUE} if simulated else set())
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        client = channel.client
        restored, now = 0, time.time()
        for tag, raw in client.hgetall(channel.unacked_key).items():
            payload, exchange, routing_key = json.loads(raw)
            headers = payload.get("headers", {})
            if not queues & {exchange, routing_key} or headers.get("eta"):
                continue  # another queue's, or held back on purpose until its time
            own = starting and bench_queue(bench) in (exchange, routing_key)
            if own or lost(registry, headers.get("id", ""), client.zscore(channel.unacked_index_key, tag), now):
                channel.qos.restore_by_tag(tag, client, leftmost=True)
                restored += 1
        return restored


def sweep(work: Path) -> int:
    """Remove the run folders this host kept of jobs that have ended since (finished on another host after this
    one died, or cancelled): the store holds their result. A failed job's folder stays (it may hold a sealed run
    the store refused); so does one whose job may still come back here to resume."""
    removed = 0
    for folder in work.iterdir():
        if folder.is_dir() and app.AsyncResult(folder.name).state in ENDED:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _celery(queue: str, concurrency: int, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    from harness.fault_injection.launcher import die_with_parent

    argv = [sys.executable, "-m", "celery", "-A", "harness.fleet.app", "worker", "-Q", queue, "-P", "threads",
            "-c", str(concurrency), "-n", name, "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle",
            "-E", "-l", "INFO"]
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


def serve(bench: str, broker: str | None, store_location: str, simulated: int, work: Path) -> int:
    url = broker_url(broker)
    configure(app, url)
    registry = Registry(url)
    reach(registry, url)
    store = open_store(store_location)
    store.check_writable()
    work.mkdir(parents=True, exist_ok=True)
    holder = registry.take_bench(bench, simulated)
    if holder is not None:
        raise FleetError(f"bench {bench!r} is already served by {holder}; one worker per bench (the lock of a "
                         f"worker that died expires {LOCK_TTL_S} s after it)")
    host = fleet_host()
    children: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    try:
        swept = sweep(work)
        if swept:
            print(f"harness fleet worker: {swept} run folder(s) of jobs that ended elsewhere removed", flush=True)
        restored = reclaim(registry, bench, simulated > 0, starting=True)
        if restored:
            print(f"harness fleet worker: {restored} job(s) left by a stopped worker: queued again", flush=True)
        env = {**os.environ, BROKER_ENV: url, BENCH_ENV: bench, STORE_ENV: store.location,
               WORK_ENV: str(work.resolve())}
        children.append(_celery(bench_queue(bench), 1, f"{bench}@{host}", env))
        if simulated > 0:
            children.append(_celery(SIMULATED_QUEUE, simulated, f"{bench}-simulated@{host}", env))
        print(f"harness fleet worker: bench {bench} on {shown(url)}, results to {store.location}"
              + (f", up to {simulated} simulated job(s) at once" if simulated else ""), flush=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(min(LOCK_TTL_S, lease_s()) / 3):
            try:
                registry.renew_bench(bench)
                restored = reclaim(registry, bench, simulated > 0)
            except Exception as exc:  # Redis away for a moment: the workers reconnect, so do we
                print(f"harness fleet worker: cannot renew the bench lock or look for lost jobs: {exc}",
                      file=sys.stderr)
            else:
                if restored:
                    print(f"harness fleet worker: {restored} job(s) whose worker is gone: queued again", flush=True)
            gone = [c for c in children if c.poll() is not None]
            if gone:
                print(f"harness fleet worker: a celery worker exited ({gone[0].returncode}); stopping",
                      file=sys.stderr)
                return 1
        return 0
    finally:
        for child in children:  # warm shutdown: a running job finishes (acks_late keeps it safe otherwise)
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGQUIT)  # cold shutdown: the job goes back to the queue
                child.wait(timeout=STOP_GRACE_S)
        registry.release_bench(bench)
