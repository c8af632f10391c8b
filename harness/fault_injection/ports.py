"""Free loopback ports for simulated DUTs whose rig says ``port: auto``.

Why not simply bind port 0: the kernel hands out the same *ephemeral* range to the outgoing connections of
every client on the machine. Between the harness choosing a port and the simulator binding it (a process
start, a second or more on a loaded machine), any client's connect() may take it as its local port — seen in
CI as "Could not start listen" and a run INCONCLUSIVE for a bench problem. A port below the ephemeral range is
never given to a connect(), so only another listener choosing the same port could collide.

Why a reservation besides the bind test: a bind test sees only ports already bound. One bench chooses all its
ports (server, control channels, a field of meters) before any simulator binds one, and parallel runs on the
machine choose theirs at the same time; two of them drawing the same still-unbound port was seen in CI as a
field meter that "exited with code 1 before answering". So a chosen port is also claimed by creating a file
named after it (O_EXCL, atomic across processes) in a shared directory; a claim older than ``CLAIM_S`` has
long since been bound or abandoned, and is taken over.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
import time
from pathlib import Path

LOWEST = 20000  # below this lie well-known services a lab machine may run
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_ATTEMPTS = 64
CLAIM_S = 300.0  # longer than any launch takes from choosing a port to binding it (ready timeouts are ≤ 60 s)
CLAIMS = Path(tempfile.gettempdir()) / "tek-harness-ports"


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(family: socket.AddressFamily, host: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _create(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def _claim(port: int) -> bool:
    """Claim ``port`` for this chooser: True unless a claim younger than CLAIM_S holds it. A stale claim is
    taken over by renaming it away first — only one of two racing choosers' renames can succeed."""
    try:
        CLAIMS.mkdir(mode=0o1777, exist_ok=True)
    except OSError:
        return True  # no shared directory (read-only /tmp): the bind test alone, as before
    path = CLAIMS / str(port)
    if _create(path):
        return True
    try:
        if time.time() - path.stat().st_mtime < CLAIM_S:
            return False
        stale = path.with_name(f"{port}.stale.{os.getpid()}")
        path.rename(stale)
    except OSError:
        return False  # another chooser renamed or re-claimed it first
    with contextlib.suppress(OSError):
        stale.unlink()
    return _create(path)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now and claimed against every other chooser on the machine (this process's
    included), chosen at random below the ephemeral range (bounded tries; then the kernel's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    top = _ephemeral_start() - 1
    if top > LOWEST:
        for port in random.Random().sample(range(LOWEST, top + 1), min(_ATTEMPTS, top + 1 - LOWEST)):
            if _bindable(family, host, port) and _claim(port):
                return port
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
