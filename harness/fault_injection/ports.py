"""Free loopback ports for simulated DUTs whose rig says ``port: auto``.

Why not simply bind port 0: the kernel hands out the same *ephemeral* range to the outgoing connections of
every client on the machine. Between the harness choosing a port and the simulator binding it (a process
start, a second or more on a loaded machine), any client's connect() may take it as its local port — seen in
CI as "Could not start listen" and a run INCONCLUSIVE for a bench problem. A port below the ephemeral range is
never given to a connect(), so only another listener choosing the same port at random could collide.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000  # below this lie well-known services a lab machine may run
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_ATTEMPTS = 64


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


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, chosen at random below the ephemeral range (bounded tries; then the kernel's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    top = _ephemeral_start() - 1
    if top > LOWEST:
        for port in random.Random().sample(range(LOWEST, top + 1), min(_ATTEMPTS, top + 1 - LOWEST)):
            if _bindable(family, host, port):
                return port
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
