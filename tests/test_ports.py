"""`port: auto` ports lie below the kernel's ephemeral range, where no client's connect() can take one between
the harness choosing it and the simulator binding it (seen in CI: "Could not start listen")."""

from __future__ import annotations

import socket

from harness.fault_injection.ports import LOWEST, _ephemeral_start, free_port


def test_an_auto_port_is_free_and_below_the_ephemeral_range():
    for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
        port = free_port(host)
        assert LOWEST <= port < _ephemeral_start()
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, port))  # free: a listener can take it


def test_a_port_in_use_is_never_handed_out():
    taken = []
    try:
        for _ in range(20):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", free_port()))
            s.listen()
            taken.append(s)
        assert len({s.getsockname()[1] for s in taken}) == 20
    finally:
        for s in taken:
            s.close()
