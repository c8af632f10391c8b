"""What the fleet keeps in Redis beside Celery's own keys: the submitted jobs, cancel requests, bench locks, job leases.

Celery's result backend holds each job's state and progress; it cannot list jobs, so submissions are
recorded here (for `harness fleet status` without a job id). A bench is one set of equipment, so exactly
one worker serves it: the worker holds the bench's lock, renewed while it lives and expiring when it dies.
A running job holds a lease the same way (``harness.fleet.lease``): a job whose lease has lapsed has lost
its worker, whichever host that was, and a live worker puts it back on its queue (``harness.fleet.worker``).
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
HOST_ENV = "HARNESS_FLEET_HOST"
LEASE_ENV = "HARNESS_FLEET_LEASE"
DEFAULT_LEASE_S = 30.0
# Take or renew a lease unless another holder has it: nil when it is ours now, else the holder's record.
_HOLD = """
local held = redis.call('get', KEYS[1])
if held and held ~= ARGV[1] then return held end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""


def fleet_host() -> str:
    """The name this host goes by in the fleet: $HARNESS_FLEET_HOST, else its hostname. Two hosts must not share
    one (containers often do): a process of "this host" that no longer runs is taken for dead."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def lease_s() -> float:
    """How long a job's lease lasts unrenewed ($HARNESS_FLEET_LEASE seconds, default 30): a worker silent that
    long has lost its job to any live worker of the job's queue."""
    return float(os.environ.get(LEASE_ENV) or DEFAULT_LEASE_S)


class Registry:
    def __init__(self, url: str) -> None:
        try:
            self.redis = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        except ValueError as exc:  # not a Redis URL: said in one line, not a traceback
            raise FleetError(f"the broker {shown(url)} is not a Redis URL: {exc}") from None
        self._hold = self.redis.register_script(_HOLD)

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

    def mark_running(self, job: str, holder: str) -> None:
        """Who runs the job (kept after its lease lapses): a live process of this host keeps its job."""
        self.redis.hset(PREFIX + "running", job, holder)

    def done_running(self, job: str, holder: str) -> None:
        if self.redis.hget(PREFIX + "running", job) == holder.encode():
            self.redis.hdel(PREFIX + "running", job)

    def runner(self, job: str) -> dict[str, Any] | None:
        raw = self.redis.hget(PREFIX + "running", job)
        return None if raw is None else json.loads(raw)

    def hold(self, job: str, holder: str, ttl_s: float) -> dict[str, Any] | None:
        """Take or renew the job's lease for ``holder`` (its JSON record): None when it is ours, else who has it."""
        held = self._hold(keys=[PREFIX + "lease:" + job], args=[holder, max(1, int(ttl_s * 1000))])
        return None if held is None else json.loads(held)

    def take_over(self, job: str, holder: str, ttl_s: float) -> None:
        """The lease is ours whoever had it (they are dead: a process of this host that no longer exists)."""
        self.redis.set(PREFIX + "lease:" + job, holder, px=max(1, int(ttl_s * 1000)))

    def holder(self, job: str) -> dict[str, Any] | None:
        """Who holds the job's lease now; None once it has lapsed (or the job never started)."""
        raw = self.redis.get(PREFIX + "lease:" + job)
        return None if raw is None else json.loads(raw)

    # ---- benches -------------------------------------------------------------------------------------------------
    def take_bench(self, bench: str, simulated: int = 0) -> str | None:
        """Hold the bench's lock for this process: None when done, else who holds it."""
        key = PREFIX + "bench:" + bench
        me = json.dumps({"host": fleet_host(), "pid": os.getpid(), "since": time.time(),
                         "simulated": simulated})
        if self.redis.set(key, me, nx=True, ex=LOCK_TTL_S):
            return None
        holder = json.loads(self.redis.get(key) or "{}")
        if holder.get("host") == fleet_host() and not _alive(int(holder.get("pid", 0))):
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


def alive_here(holder: dict[str, Any] | None) -> bool:
    """The holder is a process of this host that still runs."""
    return holder is not None and holder.get("host") == fleet_host() and _alive(int(holder["pid"]))


def dead_here(holder: dict[str, Any] | None) -> bool:
    """The holder (of a lease) was a process on this host that no longer exists."""
    return holder is not None and holder.get("host") == fleet_host() and not _alive(int(holder["pid"]))


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
