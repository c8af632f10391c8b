"""A real Redis server and real `harness fleet worker` processes for the fleet tests, each stopped by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.fault_injection.ports import free_port

READY_S = 15.0
JOB_S = 120.0
# A job's lease in the tests: a killed worker's job is put back within seconds (30 s in a lab).
TEST_LEASE_S = 3.0


@dataclass
class Redis:
    url: str
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """Debian's redis-server on a free loopback port in a temporary directory, nothing saved to disk."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (setup.sh installs Debian's redis-server as root)")
    import redis

    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                             "--appendonly", "no", "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + READY_S
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=1).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield Redis(url, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Worker:
    bench: str
    proc: subprocess.Popen[str]
    log: Path
    url: str
    store: Path
    work: Path
    simulated: int
    host: str | None

    def restart(self) -> Worker:
        """The same worker started again on this host (after it was killed)."""
        return start_worker(self.url, self.bench, self.store, self.work, self.log, self.simulated, self.host)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_worker(url: str, bench: str, store: Path, work: Path, log: Path, simulated: int = 0,
                 host: str | None = None) -> Worker:
    """`harness fleet worker` as a bench host runs it; returns once it holds its bench. ``host``: the name the
    worker goes by in the fleet, as if it ran on a host of that name (its own run root is ``work``)."""
    from harness.fleet.state import HOST_ENV, LEASE_ENV, Registry

    env = {**os.environ, LEASE_ENV: str(TEST_LEASE_S)}
    if host is not None:
        env[HOST_ENV] = host

    with log.open("a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "harness", "fleet", "worker", "--bench", bench, "--broker", url,
                                 "--store", str(store), "--work", str(work), "--simulated", str(simulated)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env)
    registry = Registry(url)
    deadline = time.monotonic() + READY_S
    while registry.served().get(bench, {}).get("pid") != proc.pid:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(f"worker {bench} did not start: {log.read_text()}")
        time.sleep(0.1)
    return Worker(bench, proc, log, url, store, work, simulated, host)


def wait_for(url: str, job: str, states: tuple[str, ...] = ("SUCCESS", "FAILURE"), timeout: float = JOB_S,
             until: Any = None) -> Any:
    """The job's Celery result once its state is one of ``states`` (and ``until(info)`` holds), bounded."""
    from harness.fleet.app import app, configure

    configure(app, url)
    deadline = time.monotonic() + timeout
    while True:
        result = app.AsyncResult(job)
        if result.state in states and (until is None or until(result.info)):
            return result
        assert time.monotonic() < deadline, f"job {job} still {result.state}: {result.info}"
        time.sleep(0.2)


def processes_naming(text: str) -> list[int]:
    """PIDs whose command line mentions ``text`` (a job's folder): to prove none is left, never to kill."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found
