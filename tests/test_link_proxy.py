"""LinkProxy against a real echo server on loopback: every fault as a peer experiences it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.fault_injection.link_proxy import LinkProxy
from harness.fault_injection.record import FaultLog

RESET = (ConnectionResetError, ConnectionRefusedError, BrokenPipeError, ConnectionAbortedError)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            pass  # the proxy reset us: that is the point of half of these tests


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "faults.jsonl"


@pytest.fixture
def proxy(echo: tuple[str, int], log_path: Path) -> Iterator[LinkProxy]:
    p = LinkProxy(echo, name="ch-a", faults=FaultLog(log_path), dut="meter").start()
    try:
        yield p
    finally:
        p.close()


def connect(proxy: LinkProxy, timeout: float = 1.0) -> socket.socket:
    s = socket.create_connection(proxy.address, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("closed")
        buf += chunk
    return buf


def roundtrip(proxy: LinkProxy, msg: bytes = b"ping", timeout: float = 1.0) -> bytes:
    with connect(proxy, timeout) as s:
        s.sendall(msg)
        return recv_exact(s, len(msg))


def fault_events(path: Path) -> dict[int, dict[str, dict]]:
    events: dict[int, dict[str, dict]] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        assert entry["phase"] not in events.setdefault(entry["event"], {}), "one begin and one end per fault"
        events[entry["event"]][entry["phase"]] = entry
    return events


def test_forwards_cleanly_both_ways(proxy: LinkProxy) -> None:
    assert roundtrip(proxy, b"hello") == b"hello"
    payload = os.urandom(1 << 20)
    with connect(proxy, timeout=5) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        assert recv_exact(s, len(payload)) == payload
        sender.join(5)
    stats = proxy.stats
    assert stats["bytes_up"] == stats["bytes_down"] == len(payload) + 5
    assert stats["chunks_dropped"] == stats["bytes_corrupted"] == 0


def test_cut_resets_live_refuses_new_and_restore_heals(proxy: LinkProxy, log_path: Path) -> None:
    live = connect(proxy)
    live.sendall(b"a")
    assert live.recv(1) == b"a"
    before = time.time()
    proxy.cut()
    assert before <= proxy.last_transition <= time.time()
    with pytest.raises(RESET):
        live.sendall(b"b")
        live.recv(1)  # RST: reset, not a timeout and not a clean EOF
    live.close()
    with pytest.raises(RESET):
        roundtrip(proxy)
    proxy.restore()
    assert roundtrip(proxy, b"again") == b"again"  # the same peer reconnects and works
    stats = proxy.stats
    assert stats["reset"] == 1 and stats["refused"] == 1
    (event,) = fault_events(log_path).values()
    assert event["begin"]["what"] == "cut" and event["begin"]["channel"] == "ch-a" and event["begin"]["dut"] == "meter"
    assert event["end"]["reason"] == "restore"


def test_blackhole_times_out_but_keeps_the_connection_open(proxy: LinkProxy) -> None:
    live = connect(proxy, timeout=0.3)
    live.sendall(b"1")
    assert live.recv(1) == b"1"
    proxy.blackhole()
    live.sendall(b"request")
    with pytest.raises(TimeoutError):
        live.recv(10)
    live.sendall(b"more")  # still open: no RST, no FIN
    with pytest.raises(TimeoutError):
        roundtrip(proxy, timeout=0.3)  # new peers are accepted, then hear nothing
    assert proxy.stats["bytes_blackholed"] >= len(b"requestmore") + 4
    proxy.restore()
    with pytest.raises(RESET):  # it lost bytes to the black hole: reset rather than left half-broken
        live.sendall(b"x")
        if not live.recv(1):
            raise ConnectionResetError("closed")
    live.close()
    assert roundtrip(proxy, b"clean") == b"clean"


def test_delay_holds_each_chunk_and_keeps_order(proxy: LinkProxy) -> None:
    with connect(proxy) as s:
        s.sendall(b"x")
        recv_exact(s, 1)
        proxy.delay(0.1)
        t0 = time.perf_counter()
        s.sendall(b"y")
        recv_exact(s, 1)
        assert time.perf_counter() - t0 >= 0.2  # 0.1 s each way
        proxy.delay(0.03, jitter_s=0.03)
        parts = [b"%03d;" % i for i in range(40)]
        for part in parts:
            s.sendall(part)
        assert recv_exact(s, 4 * len(parts)) == b"".join(parts)
    proxy.restore()


def lockstep(proxy: LinkProxy, n: int, wait_s: float = 0.025) -> list[int]:
    """Numbered requests one at a time; which echoes came back (a dropped one times out)."""
    got = []
    with connect(proxy, timeout=wait_s) as s:
        for i in range(n):
            s.sendall(b"%04d" % i)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                try:
                    reply = recv_exact(s, 4)
                except TimeoutError:
                    break
                if int(reply) == i:
                    got.append(i)
                    break
    return got


def test_drop_is_seeded_and_reproducible(echo: tuple[str, int]) -> None:
    outcomes = []
    for seed in (7, 7, 8):
        with LinkProxy(echo, name="ch-d", seed=seed) as p:
            p.drop(25)
            got = lockstep(p, 40)
            stats = p.stats
            outcomes.append((got, stats["chunks_dropped"], stats["chunks_up"], stats["chunks_down"]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] != outcomes[2]
    got, dropped, _, _ = outcomes[0]
    assert dropped > 0 and 0 < len(got) < 40
    assert dropped == 40 - len(got)  # every lost echo is exactly one dropped chunk (up or down)


def test_corrupt_is_seeded_and_reproducible(echo: tuple[str, int]) -> None:
    runs = []
    msg = bytes(range(200))
    for seed in (3, 3):
        with LinkProxy(echo, name="ch-c", seed=seed) as p, connect(p) as s:
            p.corrupt(2)
            replies = []
            for _ in range(30):
                s.sendall(msg)
                replies.append(recv_exact(s, len(msg)))  # length is kept: bytes flipped, not lost
            stats = p.stats
            runs.append((replies, stats["bytes_corrupted"], stats["chunks_corrupted"]))
    assert runs[0] == runs[1]
    replies, flipped, _ = runs[0]
    damaged = sum(a != b for r in replies for a, b in zip(r, msg, strict=True))
    assert 0 < damaged <= flipped  # a byte flipped both ways may come back whole, never more
    assert 50 < flipped < 600  # 12 000 bytes at 2 %: ~240


def test_flap_alternates_and_ends_restored(proxy: LinkProxy, log_path: Path) -> None:
    proxy.flap(up_s=0.15, down_s=0.15, cycles=2)
    seen = []
    deadline = time.monotonic() + 3
    while proxy.active_faults and time.monotonic() < deadline:
        try:
            seen.append(roundtrip(proxy, timeout=0.2) == b"ping")
        except (*RESET, TimeoutError):
            seen.append(False)
        time.sleep(0.02)
    assert proxy.active_faults == []
    assert seen[0] is False and True in seen  # starts cut, then up
    assert roundtrip(proxy) == b"ping"  # ends restored
    (event,) = fault_events(log_path).values()
    assert event["begin"]["what"] == "flap" and event["begin"]["params"]["cycles"] == 2
    assert [s for _, s in event["end"]["transitions"]] == ["down", "up", "down", "up"]
    proxy.flap(up_s=5, down_s=5)  # no cycle limit: runs until restore, which may come in a down phase
    with pytest.raises(RESET):
        roundtrip(proxy)
    proxy.restore()
    assert roundtrip(proxy) == b"ping"
    last = fault_events(log_path)[2]
    assert last["end"]["reason"] == "restore" and [s for _, s in last["end"]["transitions"]] == ["down", "up"]


def test_every_fault_logs_one_begin_and_one_end(proxy: LinkProxy, log_path: Path) -> None:
    kinds = {"cut": {}, "blackhole": {}, "delay": {"mean_s": 0.01}, "drop": {"percent": 5},
             "corrupt": {"percent": 1}, "flap": {"up_s": 0.01, "down_s": 0.01}}
    for kind, params in kinds.items():
        with proxy.fault(kind, **params):
            pass
    with pytest.raises(RuntimeError), proxy.fault("delay", mean_s=0.5):
        raise RuntimeError("test body fails")
    assert proxy.active_faults == []
    assert roundtrip(proxy) == b"ping"  # and restored despite the exception
    proxy.delay(0.01)
    proxy.drop(1)
    proxy.delay(0.02)  # replaces the first delay: its record ends
    proxy.restore()
    events = fault_events(log_path)
    assert [e["begin"]["what"] for e in events.values()] == [*kinds, "delay", "delay", "drop", "delay"]
    assert all(set(e) == {"begin", "end"} and e["begin"]["kind"] == "link" for e in events.values())
    assert [e["end"].get("reason") or e["end"].get("replaced_by") for e in events.values()][-3:] == \
        ["delay", "restore", "restore"]


def test_survives_thousands_of_connections(proxy: LinkProxy) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    for i in range(1500):
        if i == 700:
            proxy.cut()
            with pytest.raises(RESET):
                roundtrip(proxy)
            proxy.restore()
        assert roundtrip(proxy, b"%d" % i) == b"%d" % i
    deadline = time.monotonic() + 2
    while proxy.stats["active"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.stats["active"] == 0
    assert len(os.listdir("/proc/self/fd")) <= fds + 2  # nothing leaks per connection


def test_cut_timestamp_matches_what_the_peer_sees(proxy: LinkProxy) -> None:
    lags = []
    for _ in range(10):
        with connect(proxy, timeout=2) as s:
            seen: list[float] = []

            def wait(s: socket.socket = s, seen: list[float] = seen) -> None:
                with contextlib.suppress(OSError):
                    s.recv(1)  # blocks until the cut: RST
                seen.append(time.time())

            reader = threading.Thread(target=wait)
            reader.start()
            time.sleep(0.005)
            proxy.cut()
            reader.join(2)
            lags.append(seen[0] - proxy.last_transition)
            proxy.restore()
    assert max(lags) < 0.05, lags
    assert min(lags) >= 0, lags  # a lower bound: no peer sees the cut before the timestamp says it happened


def test_unreachable_upstream_resets_the_peer() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()  # bound, never listening: connections to it are refused
        with LinkProxy(dead, name="ch-x") as p, pytest.raises(RESET):
            roundtrip(p)
        assert p.stats["upstream_failed"] == 1


def test_close_leaves_no_thread_and_no_listener(echo: tuple[str, int]) -> None:
    p = LinkProxy(echo, name="ch-z").start()
    live = connect(p)
    p.delay(0.01)
    port = p.address[1]
    p.close()
    p.close()  # idempotent
    assert not [t for t in threading.enumerate() if t.name == "link-proxy-ch-z"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(p.address, timeout=1)
    listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 if line.split()[3] == "0A"]
    assert f"0100007F:{port:04X}" not in listening
    assert live.recv(1) == b""  # closed in an orderly way
    live.close()
    with pytest.raises(RuntimeError, match="not running"):
        p.cut()
