"""The Celery application of the fleet: Redis as broker and result backend, set up to survive a dead worker.

A job is acknowledged only when it is finished (``acks_late``), so a worker that dies (even by SIGKILL)
leaves it unacknowledged in Redis; ``task_reject_on_worker_lost`` does the same for a lost pool process
(the fleet's pools are threads: a job is a `harness certify` child to watch, so losing the pool is losing
the worker). A worker takes one job at a time per slot (prefetch 1). Redis hands an unacknowledged job to
another worker once the visibility timeout passes, so that timeout must be longer than the longest job
(default 3 days; ``HARNESS_FLEET_VISIBILITY_TIMEOUT`` seconds), or a job still running would be started a
second time (its result would still be the first one stored). The timeout is the last resort: a bench
worker that restarts takes its bench's lost jobs back at once, and a job whose host died for good is put
back by a live worker once the job's lease lapses (``harness.fleet.lease``, ``harness.fleet.worker``).

Monitoring: ``HARNESS_FLEET_BROKER=redis://HOST:6379/0 celery -A harness.fleet.app flower`` (or ``… inspect
ping``: each live worker answers as BENCH@HOST and BENCH-simulated@HOST).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from celery import Celery

BROKER_ENV = "HARNESS_FLEET_BROKER"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
VISIBILITY_ENV = "HARNESS_FLEET_VISIBILITY_TIMEOUT"
DEFAULT_VISIBILITY_S = 3 * 86400
TASK = "tek-harness.certify"


def broker_url(given: str | None = None) -> str:
    return given or os.environ.get(BROKER_ENV) or DEFAULT_BROKER


def shown(url: str) -> str:
    """The URL as it may be printed: a password in it replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def configure(celery: Celery, broker: str | None = None) -> Celery:
    url = broker_url(broker)
    visibility = float(os.environ.get(VISIBILITY_ENV) or DEFAULT_VISIBILITY_S)
    transport = {"visibility_timeout": visibility}
    celery.conf.update(
        broker_url=url, result_backend=url,
        broker_transport_options=transport, result_backend_transport_options=transport,
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_track_started=True, task_serializer="json", result_serializer="json", accept_content=["json"],
        result_expires=30 * 86400, broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False, worker_send_task_events=True, task_send_sent_event=True,
    )
    return celery


app = configure(Celery("tek-harness-fleet", include=["harness.fleet.task"]))
