"""What does the link proxy cost? Throughput through ``LinkProxy`` vs. direct, and how precisely
``last_transition`` says when a peer saw a cut.

Why: a failover suite routes a DUT's channel through the proxy for the whole run, so the proxy
must not be the bottleneck (bulk transfer, request rate, connection rate), and switchover times
are measured from ``last_transition``, so its error is part of every such measurement.

How: an asyncio echo server runs as its own process on a free loopback port; the proxy runs in
this process (as in the harness); the client runs as its own process (as a DUT would), so no
two of them share a GIL. In alternating rounds, each measured direct and through the proxy:

* ``bytes/s``    one connection, 64 KiB writes, echoed back; bytes echoed per second (one way);
* ``requests/s`` one connection, 64-byte request, wait for the echo, repeat;
* ``conns/s``    connect, one 64-byte round trip, close, repeat.

Figures are medians over rounds; the ratio is proxy / direct. Then ``--trials`` times: a peer
process blocks in ``recv`` on a proxied connection, the proxy is ``cut()``, and the peer's
``time.time()`` when ``recv`` raised is compared with ``last_transition`` (and with the moment
``cut()`` was called). Every process started here is stopped by PID at the end.

Run: ``python benchmarks/link_proxy_throughput.py [--rounds 3] [--seconds 1.5] [--trials 100]``.
The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from harness.fault_injection.link_proxy import LinkProxy
from harness.fault_injection.ports import free_port

HOST = "127.0.0.1"
METRICS = ("bytes/s", "requests/s", "conns/s")


# ---- the processes ---------------------------------------------------------------------------
def echo_server(port: int) -> None:
    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Echo, HOST, port)
        await server.serve_forever()

    asyncio.run(main())


def client(metric: str, port: int, seconds: float) -> None:
    """One measurement against HOST:port; prints the rate."""
    deadline = time.perf_counter() + seconds
    t0, count = time.perf_counter(), 0
    if metric == "bytes/s":
        s = socket.create_connection((HOST, port), timeout=10)
        block, stop = b"\xa5" * 65536, threading.Event()

        def send() -> None:
            while not stop.is_set():
                s.sendall(block)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        while time.perf_counter() < deadline:
            count += len(s.recv(1 << 20))
        stop.set()
        s.close()
    elif metric == "requests/s":
        with socket.create_connection((HOST, port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while time.perf_counter() < deadline:
                s.sendall(b"q" * 64)
                got = 0
                while got < 64:
                    got += len(s.recv(64 - got))
                count += 1
    else:
        while time.perf_counter() < deadline:
            with socket.create_connection((HOST, port), timeout=10) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(b"q" * 64)
                got = 0
                while got < 64:
                    got += len(s.recv(64 - got))
            count += 1
    print(count / (time.perf_counter() - t0))


def peer(port: int) -> None:
    """Per line on stdin: connect, one round trip, say ``ready``, block in recv, print when it failed."""
    for _ in sys.stdin:
        s = socket.create_connection((HOST, port), timeout=10)
        s.sendall(b"x")
        s.recv(1)
        print("ready", flush=True)
        with contextlib.suppress(OSError):
            s.recv(1)  # until the cut resets it
        print(repr(time.time()), flush=True)
        s.close()


# ---- the driver ------------------------------------------------------------------------------
def spawn(*args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], text=True, **kw)


def measure(metric: str, port: int, seconds: float) -> float:
    out = subprocess.run([sys.executable, __file__, "--client", metric, str(port), str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 30, check=True)
    return float(out.stdout.strip())


def wait_listening(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("echo server did not start")


def cut_precision(proxy: LinkProxy, trials: int) -> dict[str, float]:
    proc = spawn("--peer", str(proxy.address[1]), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    lag, from_call = [], []
    try:
        for _ in range(trials):
            proc.stdin.write("go\n")
            proc.stdin.flush()
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("peer did not connect")
            time.sleep(0.01)  # let it block in recv
            called = time.time()
            proxy.cut()
            seen = float(proc.stdout.readline())
            lag.append(seen - proxy.last_transition)
            from_call.append(seen - called)
            proxy.restore()
    finally:
        proc.kill()
        proc.wait(timeout=5)
    ms = 1000.0
    return {"trials": trials,
            "peer_minus_last_transition_ms": {"median": round(statistics.median(lag) * ms, 3),
                                              "max": round(max(lag) * ms, 3), "min": round(min(lag) * ms, 3)},
            "peer_minus_cut_call_ms": {"median": round(statistics.median(from_call) * ms, 3),
                                       "max": round(max(from_call) * ms, 3)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--client", nargs=3, metavar=("METRIC", "PORT", "SECONDS"), help=argparse.SUPPRESS)
    ap.add_argument("--echo", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--peer", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        return client(args.client[0], int(args.client[1]), float(args.client[2]))
    if args.echo:
        return echo_server(args.echo)
    if args.peer:
        return peer(args.peer)

    port = free_port(HOST)
    server = spawn("--echo", str(port))
    proxy = None
    try:
        wait_listening(port, server)
        proxy = LinkProxy((HOST, port), name="bench").start()
        rates: dict[str, dict[str, list[float]]] = {m: {"direct": [], "proxy": []} for m in METRICS}
        for _ in range(args.rounds):
            for metric in METRICS:
                rates[metric]["direct"].append(measure(metric, port, args.seconds))
                rates[metric]["proxy"].append(measure(metric, proxy.address[1], args.seconds))
        summary: dict[str, Any] = {}
        print(f"{'':12} {'direct':>14} {'proxy':>14} {'ratio':>7}")
        for metric in METRICS:
            d, p = (statistics.median(rates[metric][k]) for k in ("direct", "proxy"))
            summary[metric] = {"direct": round(d), "proxy": round(p), "ratio": round(p / d, 3)}
            print(f"{metric:12} {d:14,.0f} {p:14,.0f} {p / d:7.3f}")
        summary["cut_timestamp"] = cut_precision(proxy, args.trials)
        print(f"cut seen by the peer, minus last_transition over {args.trials} trials (ms): "
              f"{summary['cut_timestamp']['peer_minus_last_transition_ms']}")
        print(json.dumps(summary))
    finally:
        if proxy is not None:
            proxy.close()
        server.kill()
        server.wait(timeout=5)


if __name__ == "__main__":
    main()
