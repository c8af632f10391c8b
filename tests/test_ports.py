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


def test_a_chosen_port_is_not_chosen_again_before_it_is_bound(tmp_path):
    """One bench chooses all its ports before any simulator binds one (server, control channels, a field of
    meters), and parallel runs choose theirs at the same time: a port handed out and not yet bound is claimed,
    so no second chooser — in this process or another — gets it (from a narrowed range, so a repeat would show)."""
    import subprocess
    import sys

    from harness.fault_injection import ports

    code = ("import pathlib; from unittest import mock; from harness.fault_injection import ports\n"
            f"ports.CLAIMS = pathlib.Path({str(tmp_path)!r})\n"
            "with mock.patch.object(ports, '_ephemeral_start', return_value=ports.LOWEST + 200):\n"
            "    print(' '.join(str(ports.free_port()) for _ in range(40)))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        chosen = [int(p) for proc in procs for p in proc.communicate(timeout=60)[0].split()]
    finally:
        for proc in procs:
            proc.kill()
    assert len(chosen) == 120
    assert len(set(chosen)) == 120, sorted(chosen)
    assert all(ports.LOWEST <= p < ports.LOWEST + 200 for p in chosen)


def test_a_stale_claim_is_taken_over(tmp_path, monkeypatch):
    """A claim left by a run killed before its simulator bound the port must not lock the port forever."""
    import os
    import time

    from harness.fault_injection import ports

    monkeypatch.setattr(ports, "CLAIMS", tmp_path)
    assert ports._claim(20001) and not ports._claim(20001)  # held: a second chooser is refused
    old = time.time() - ports.CLAIM_S - 1
    os.utime(tmp_path / "20001", (old, old))
    assert ports._claim(20001) and not ports._claim(20001)  # stale: taken over, and held again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20001"]
