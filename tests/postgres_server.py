"""A real PostgreSQL server for a test: ``initdb`` on a temporary directory and ``postgres`` listening only on a Unix
socket in it (no TCP port at all), trust authentication for the socket, stopped by its PID.

PostgreSQL refuses to run as root, so as root (CI, this machine) the cluster belongs to the ``postgres`` account
Debian's package makes (or ``nobody``). Where no PostgreSQL server is installed the test is skipped with the reason,
except in CI (``CI`` set), where ./setup.sh installs Debian's ``postgresql`` and a skip would hide a missing install.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SUPERUSER = "harness"


def bindir() -> Path | None:
    """Where initdb and postgres are: on PATH, or Debian's /usr/lib/postgresql/<version>/bin (not on PATH)."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _owner() -> pwd.struct_passwd | None:
    """The account the cluster runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.skip("running as root with neither a postgres nor a nobody account to run PostgreSQL as")


class PostgresServer:
    def __init__(self, root: Path, proc: subprocess.Popen[bytes]) -> None:
        self.root, self.proc = root, proc
        self.socket_dir = root / "socket"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database, over the socket (no password: trust on a socket only we can reach)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), dbname="postgres", user=SUPERUSER, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "postgres.log").read_text(errors="replace")[-3000:]
        return ""


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bins = bindir()
    if bins is None:
        reason = ("no PostgreSQL server installed (initdb neither on PATH nor in /usr/lib/postgresql/*/bin): "
                  "./setup.sh as root installs Debian's postgresql")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    owner = _owner()
    root = Path(tempfile.mkdtemp(prefix="harness-pg-"))  # not under pytest's root-only tmp: the owner must reach it
    (root / "socket").mkdir()
    as_owner: dict = {}
    if owner is not None:
        for path in (root, root / "socket"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(root)}
    proc = None
    try:
        init = subprocess.run([str(bins / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER, "--auth=trust",
                               "--encoding=UTF8", "--locale=C", "--no-sync"], capture_output=True, text=True,
                              timeout=120, env=env, stdin=subprocess.DEVNULL, **as_owner)
        assert init.returncode == 0, f"initdb failed: {init.stdout}{init.stderr}"
        log = open(root / "postgres.log", "wb")  # noqa: SIM115 (the server writes it until it stops)
        if owner is not None:
            os.chown(root / "postgres.log", owner.pw_uid, owner.pw_gid)
        proc = subprocess.Popen([str(bins / "postgres"), "-D", str(root / "data"), "-k", str(root / "socket"),
                                 # fsync off: a test kills the AMR server, never PostgreSQL or the host, and a
                                 # committed row is visible to every later session without it (shutdown is faster)
                                 "-c", "listen_addresses=", "-p", "5432", "-c", "fsync=off"], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True, **as_owner)
        log.close()
        server = PostgresServer(root, proc)
        _wait_ready(server)
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PostgresServer, timeout_s: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        assert server.proc.poll() is None, f"postgres exited {server.proc.returncode}: {server.log()}"
        try:
            psycopg.connect(host=str(server.socket_dir), dbname="postgres", user=SUPERUSER, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, f"postgres not ready within {timeout_s} s: {server.log()}"
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT to the postmaster, by its PID); its whole group killed if it has not ended in 15 s."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
