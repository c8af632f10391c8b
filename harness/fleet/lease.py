"""A running job's lease: how any host learns, within seconds, that the worker running a job is gone.

Redis hands an unacknowledged job to another worker only after the visibility timeout, which must outlast
the longest job (days). A job whose worker died on another host would wait that long. So a running job
holds a lease in Redis, renewed every third of its length (``HARNESS_FLEET_LEASE``, default 30 s) by a
thread of the task; when it lapses, the worker that held it is dead (or cut off), and a live worker of the
job's queue puts it back (``harness.fleet.worker.reclaim``): it restarts there, or resumes if it comes back
to the host that has its run folder. Should a worker that was only slow find its lease taken, it stops its
run without a verdict, so the job still gets one set of verdicts.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from typing import Any

import redis

from harness.fleet.state import Registry, dead_here, fleet_host, lease_s

POLL_S = 0.5


class JobLease:
    """The lease of one job for one run of it (one delivery, one process)."""

    def __init__(self, registry: Registry, job: str, worker: str) -> None:
        self.registry, self.job, self.ttl_s = registry, job, lease_s()
        self.me = json.dumps({"host": fleet_host(), "pid": os.getpid(), "worker": worker,
                              "token": uuid.uuid4().hex, "since": time.time()})
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> dict[str, Any] | None:
        """Hold the lease and keep it renewed: None once it is ours, else the live holder (the job runs there).

        A holder that was a process of this host that no longer exists is taken over at once; any other has
        until its lease lapses (a little more, for a renewal late under load)."""
        deadline = time.monotonic() + 1.5 * self.ttl_s + 1.0
        while (holder := self.registry.hold(self.job, self.me, self.ttl_s)) is not None:
            if dead_here(holder):
                self.registry.take_over(self.job, self.me, self.ttl_s)
                break
            if time.monotonic() > deadline:
                return holder
            time.sleep(POLL_S)
        self.registry.mark_running(self.job, self.me)
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.job}", daemon=True)
        self._thread.start()
        return None

    def renew(self) -> bool:
        """Renew the lease; False (and ``lost`` set) once another worker has the job: ours must give no verdict."""
        if self.registry.hold(self.job, self.me, self.ttl_s) is None:
            return True
        self.lost.set()
        return False

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                if not self.renew():
                    return
            except redis.RedisError:
                continue  # Redis away for a moment: keep trying

    def release(self) -> None:
        """Stop renewing. The lease lapses by itself: until the job is acknowledged, it still says who ran it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):  # a record left names a finished process: it holds nothing
            self.registry.done_running(self.job, self.me)
