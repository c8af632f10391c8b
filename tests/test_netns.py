"""NetnsLink with a real TCP echo server inside the namespace, talked to from the host end.

Needs root. Where namespaces cannot be used the tests fail with the reason, unless HARNESS_NO_NETNS
is set (CI runs as root: a silent skip would hide a broken bench). ``netem`` needs sch_netem in the
kernel as well: on a kernel built without it (this project's VMs) the delay test is skipped with that
reason — the injector itself refuses netem faults there with the same message, and the test below
proves nothing is half-applied.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.fault_injection.netns import NetnsLink, netem_available, netns_available
from harness.fault_injection.record import FaultLog

PORT = 7007  # inside our own namespace: nothing else can hold it
SERVER = """
import socket, sys, threading
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
def serve(c):
    with c:
        while data := c.recv(65536):
            c.sendall(data)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def require(reason: str | None, env: str) -> None:
    if reason is None:
        return
    if os.environ.get(env):
        pytest.skip(f"{env} is set: {reason}")
    pytest.fail(f"{reason} (set {env}=1 to skip these tests deliberately)")


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "faults.jsonl"


@pytest.fixture
def link(log_path: Path) -> Iterator[NetnsLink]:
    require(netns_available(), "HARNESS_NO_NETNS")
    with NetnsLink(name_hint="test meter", faults=FaultLog(log_path), dut="meter") as link:
        proc = subprocess.Popen(link.command([sys.executable, "-c", SERVER, link.ns_address, str(PORT)]),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            wait_listening(link, proc)
            yield link
        finally:
            proc.kill()
            proc.wait(timeout=5)
    assert_gone(link)


def wait_listening(link: NetnsLink, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"echo server in {link.namespace} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            socket.create_connection((link.ns_address, PORT), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"echo server in {link.namespace} did not listen within 10 s")


def connect(link: NetnsLink, timeout: float = 1.0) -> socket.socket:
    s = socket.create_connection((link.ns_address, PORT), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def rtt(s: socket.socket, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(b"r")
        assert s.recv(1) == b"r"
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def assert_gone(link: NetnsLink) -> None:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    assert link.namespace not in namespaces
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10).stdout
    assert link.host_if not in links and link.ns_if not in links


def fault_events(path: Path) -> list[tuple[str, str]]:
    return [(e["phase"], e.get("what") or e.get("reason") or e.get("replaced_by"))
            for e in map(json.loads, path.read_text().splitlines())]


def test_create_gives_a_reachable_namespace(link: NetnsLink) -> None:
    assert link.namespace.startswith("tek-test-meter-")
    assert link.host_address.startswith("10.213.") and link.ns_address.startswith("10.213.")
    assert link.command(["true"]) == ["ip", "netns", "exec", link.namespace, "true"]
    with connect(link) as s:
        assert rtt(s) < 0.05
    inside = subprocess.run(link.command(["ip", "-o", "-4", "addr"]), capture_output=True, text=True, timeout=10)
    assert f"{link.ns_address}/30" in inside.stdout and "127.0.0.1" in inside.stdout  # lo is up too


def test_netem_delay_raises_rtt(link: NetnsLink, log_path: Path) -> None:
    reason = netem_available()
    if reason is not None and "sch_netem" in reason:
        pytest.skip(f"this kernel has no netem: {reason}")
    require(reason, "HARNESS_NO_NETNS")
    with connect(link, timeout=3) as s:
        base = rtt(s)
        link.netem(delay_ms=100)
        slow = rtt(s, 3)
        link.restore()
        assert slow >= base + 0.18  # 100 ms on each veth end: the round trip pays twice
        assert rtt(s) < base + 0.05
    assert fault_events(log_path) == [("begin", "netem"), ("end", "restore")]


def test_cut_breaks_and_restore_heals(link: NetnsLink, log_path: Path) -> None:
    live = connect(link, timeout=0.5)
    try:
        rtt(live, 1)
        link.cut()
        live.sendall(b"q")
        with pytest.raises(TimeoutError):
            live.recv(1)  # silent: no reset, no error, just nothing
        with pytest.raises(TimeoutError):
            connect(link, timeout=0.5)
        link.restore()
        with connect(link) as fresh:
            assert rtt(fresh) < 0.05
        live.settimeout(3)
        assert live.recv(1) == b"q"  # the connection held across the cut: TCP retransmitted, as over a cable
    finally:
        live.close()
    assert fault_events(log_path) == [("begin", "cut"), ("end", "restore")]


def test_close_removes_everything_even_when_the_body_raises(log_path: Path) -> None:
    require(netns_available(), "HARNESS_NO_NETNS")
    with pytest.raises(RuntimeError, match="test body"), NetnsLink(name_hint="boom", faults=FaultLog(log_path)) as link:
        link.cut()
        raise RuntimeError("test body failed")
    assert_gone(link)
    assert fault_events(log_path) == [("begin", "cut"), ("end", "close")]
    link.close()  # idempotent

    partial = NetnsLink(name_hint="partial").create()
    subprocess.run(["ip", "link", "del", "dev", partial.host_if], check=True, timeout=10)  # half gone already
    partial.close()  # never raises on partial state
    assert_gone(partial)


def test_parallel_links_do_not_collide() -> None:
    require(netns_available(), "HARNESS_NO_NETNS")
    with NetnsLink(name_hint="a") as a, NetnsLink(name_hint="a") as b:
        assert a.namespace != b.namespace and a.host_if != b.host_if
        nets = {(addr.rsplit(".", 1)[0], int(addr.rsplit(".", 1)[1]) // 4) for addr in (a.host_address, b.host_address)}
        assert len(nets) == 2  # distinct /30s
    assert_gone(a)
    assert_gone(b)


def qdiscs(link: NetnsLink) -> str:
    host = subprocess.run(["tc", "qdisc", "show", "dev", link.host_if], capture_output=True, text=True, timeout=10)
    peer = subprocess.run(["tc", "-n", link.namespace, "qdisc", "show", "dev", link.ns_if], capture_output=True,
                          text=True, timeout=10)
    return host.stdout + peer.stdout


def test_netem_applies_to_both_ends_or_fails_cleanly(link: NetnsLink, log_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs on every kernel: with sch_netem both ends carry it; without, nothing is half-applied."""
    from harness.fault_injection import netns

    if netem_available() is None:
        link.netem(loss_pct=1, delay_ms=5)
        assert qdiscs(link).count("netem") == 2
        link.restore()
        assert fault_events(log_path) == [("begin", "netem"), ("end", "restore")]
    else:
        with pytest.raises(netns.NetnsError, match="sch_netem"):
            link.netem(delay_ms=5)
        assert "netem" not in qdiscs(link) and "pfifo" not in qdiscs(link)
        assert not log_path.exists()  # a fault that never happened is not evidence
    with connect(link) as s:
        assert rtt(s) < 0.05
    issued: list[list[str]] = []
    real_run = netns._run
    monkeypatch.setattr(netns, "_run", lambda argv, **kw: issued.append(argv) or real_run(["true"]))
    link.netem(loss_pct=5, delay_ms=100, jitter_ms=10, corrupt_pct=0.5)
    monkeypatch.undo()
    impairment = ["netem", "delay", "100ms", "10ms", "loss", "5%", "corrupt", "0.5%"]
    assert issued == [["tc", "qdisc", "replace", "dev", link.host_if, "root", *impairment],
                      ["tc", "-n", link.namespace, "qdisc", "replace", "dev", link.ns_if, "root", *impairment]]


def test_a_crashing_process_leaves_no_namespace_behind() -> None:
    require(netns_available(), "HARNESS_NO_NETNS")
    crash = ("from harness.fault_injection.netns import NetnsLink\n"
             "link = NetnsLink(name_hint='crash').create()\n"
             "print(link.namespace, link.host_if, flush=True)\n"
             "raise RuntimeError('the test process dies without closing')\n")
    done = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "the test process dies" in done.stderr
    namespace, host_if = done.stdout.split()
    assert namespace.startswith("tek-crash-")
    assert namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    assert host_if not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10).stdout
