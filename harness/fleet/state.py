"""What the fleet keeps in Redis beside Celery's own keys: the submitted jobs, cancel requests, bench locks.

Celery's result backend holds each job's state and progress; it cannot list jobs, so submissions are
recorded here (for `harness fleet status` without a job id). A bench is one set of equipment, so exactly
one worker serves it: the worker holds the bench's lock, renewed while it lives and expiring when it dies.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import redis

from harness.fleet.app import shown
from harness.fleet.errors import FleetError

PREFIX = "tek-harness:fleet:"
LOCK_TTL_S = 30
KEEP_S = 30 * 86400


class Registry:
    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)

    # ---- jobs ----------------------------------------------------------------------------------------------------
    def add_job(self, job: str, record: dict[str, Any]) -> None:
        self.redis.hset(PREFIX + "jobs", job, json.dumps(record))

    def jobs(self) -> dict[str, dict[str, Any]]:
        raw = self.redis.hgetall(PREFIX + "jobs")
        records = {k.decode(): json.loads(v) for k, v in raw.items()}
        return dict(sorted(records.items(), key=lambda kv: kv[1].get("submitted", 0)))

    def job(self, job: str) -> dict[str, Any] | None:
        raw = self.redis.hget(PREFIX + "jobs", job)
        return None if raw is None else json.loads(raw)

    def cancel(self, job: str) -> None:
        self.redis.set(PREFIX + "cancel:" + job, "1", ex=KEEP_S)

    def cancelled(self, job: str) -> bool:
        return bool(self.redis.exists(PREFIX + "cancel:" + job))

    def mark_running(self, job: str, worker: str) -> None:
        """Which process runs the job: a worker restarted on this host takes back what a dead one held."""
        record = {"host": socket.gethostname(), "pid": os.getpid(), "worker": worker, "since": time.time()}
        self.redis.hset(PREFIX + "running", job, json.dumps(record))

    def runner(self, job: str) -> dict[str, Any] | None:
        raw = self.redis.hget(PREFIX + "running", job)
        return None if raw is None else json.loads(raw)

    # ---- benches -------------------------------------------------------------------------------------------------
    def take_bench(self, bench: str, simulated: int = 0) -> str | None:
        """Hold the bench's lock for this process: None when done, else who holds it."""
        key = PREFIX + "bench:" + bench
        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                         "simulated": simulated})
        if self.redis.set(key, me, nx=True, ex=LOCK_TTL_S):
            return None
        holder = json.loads(self.redis.get(key) or "{}")
        if holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", 0))):
            self.redis.set(key, me, ex=LOCK_TTL_S)  # our own worker, dead (kill -9): its lock is ours now
            return None
        return f"{holder.get('host')} (pid {holder.get('pid')})"

    def renew_bench(self, bench: str) -> None:
        self.redis.expire(PREFIX + "bench:" + bench, LOCK_TTL_S)

    def release_bench(self, bench: str) -> None:
        self.redis.delete(PREFIX + "bench:" + bench)

    def served(self) -> dict[str, dict[str, Any]]:
        """The benches a live worker serves, with its host, pid and how many simulated jobs it takes."""
        out = {}
        for key in self.redis.scan_iter(PREFIX + "bench:*"):
            raw = self.redis.get(key)
            if raw is not None:
                out[key.decode().removeprefix(PREFIX + "bench:")] = json.loads(raw)
        return out


def reach(registry: Registry, url: str) -> None:
    """A FleetError in one line unless the broker answers."""
    try:
        registry.redis.ping()
    except redis.RedisError as exc:
        raise FleetError(f"cannot reach the broker {shown(url)}: {exc}") from None


def dead_here(runner: dict[str, Any] | None) -> bool:
    """The job's runner was a process on this host that no longer exists."""
    return runner is not None and runner.get("host") == socket.gethostname() and not _alive(int(runner["pid"]))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
