"""Link faults without privileges: a TCP proxy between a peer and one channel's endpoint.

Why a proxy: channel-failover checks need to break *one* channel of a DUT on demand, on any
machine, as any user. The peer connects to ``address``; every connection is relayed to
``target`` by an asyncio loop in a daemon thread, and the faults below act on that relay.
Public methods are called from the test thread and return only once the fault has taken effect.

Semantics (and why):

* ``cut``: live connections are reset (RST, SO_LINGER 0) on both sides; new ones are accepted and
  reset at once. Accept-and-RST rather than closing the listener, so the port is never released
  and ``restore`` can never fail to re-bind it (ephemeral ports are handed out to other sockets
  within microseconds). A peer's ``connect`` may succeed; its first read or write then fails.
* ``blackhole``: everything is read and dropped, both ways; new peers are accepted but never
  connected upstream. A real black hole loses no TCP bytes (they are retransmitted), this one
  acknowledges and loses them; so ``restore`` resets the connections it left broken (bytes or a
  FIN dropped, or never connected upstream), and connections that stayed idle carry on intact.
* ``delay``/``drop``/``corrupt`` act per chunk (one ``recv``) and per direction, may be combined,
  and leave connections as they are at ``restore``: damaged streams are what they are for.
* Exactly one FaultLog ``begin`` per applied fault and one ``end`` when it is undone (``restore``,
  replaced by another fault of the same slot, or ``close``). All randomness is ``Random(seed)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from harness.fault_injection.fault_window import fault_window
from harness.fault_injection.link_relay import Connection, Side, reset_transport
from harness.fault_injection.record import FaultLog

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 5.0  # bound on every call from the test thread into the proxy's loop
LINK_STATES = ("cut", "blackhole", "flap")  # mutually exclusive: the state of the link
IMPAIRMENTS = ("delay", "drop", "corrupt")  # combinable with each other and with a link state

STAT_KEYS = ("accepted", "refused", "reset", "active", "upstream_failed", "bytes_up", "bytes_down", "chunks_up",
             "chunks_down", "chunks_dropped", "chunks_corrupted", "bytes_corrupted", "bytes_blackholed")


class LinkProxy:
    """A TCP relay for one channel whose link can be cut, black-holed, delayed, lossy or noisy."""

    def __init__(self, target: tuple[str, int], *, name: str, listen: tuple[str, int] = ("127.0.0.1", 0),
                 seed: int = 1, faults: FaultLog | None = None, dut: str = "",
                 connect_timeout_s: float = 5.0) -> None:
        self.target = target
        self.name = name
        self.address: tuple[str, int] = listen
        self.dut = dut
        self.faults = faults if faults is not None else FaultLog(None)
        self.connect_timeout_s = connect_timeout_s
        self.last_transition: float = 0.0
        self._rng = random.Random(seed)
        self._stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._conns: set[Connection] = set()
        self._mode = "up"  # up | cut | blackhole
        self._params: dict[str, dict[str, float]] = {}  # active impairments
        self._events: dict[str, int] = {}  # slot -> FaultLog event
        self._flap: asyncio.Task[None] | None = None
        self._flap_log: list[tuple[float, str]] = []
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> LinkProxy:
        """Bind, then serve from a daemon thread. Binding here makes a busy port fail in the caller."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"link proxy {self.name} already started")
            family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
            sock = socket.create_server(self.address, family=family, backlog=1024)  # SO_REUSEADDR on POSIX
            sock.setblocking(False)
            self.address = sock.getsockname()[:2]
            self._loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(sock, ready), name=f"link-proxy-{self.name}",
                                            daemon=True)
            self._thread.start()
        if not ready.wait(CALL_TIMEOUT_S) or self._server is None:
            self.close()
            raise RuntimeError(f"link proxy {self.name}: event loop did not start")
        self.last_transition = time.time()
        return self

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)

        def accept() -> Side:
            return Connection(self._made, self._forward, self._gone).peer

        try:
            self._server = loop.run_until_complete(loop.create_server(accept, sock=sock))
            ready.set()
            loop.run_forever()
        except Exception:
            log.exception("link proxy %s: event loop failed", self.name)
            sock.close()
        finally:
            ready.set()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def close(self) -> None:
        """Undo every fault (logged), close every socket, stop the loop and join its thread. Idempotent."""
        with self._lock:
            thread = self._thread
            if thread is None or self._closed:
                return
            self._closed = True
        if self._running():
            with contextlib.suppress(Exception):
                self._call(self._shutdown)
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
        thread.join(CALL_TIMEOUT_S)
        if thread.is_alive():
            log.warning("link proxy %s: loop thread did not stop within %g s", self.name, CALL_TIMEOUT_S)

    async def _shutdown(self) -> None:
        self._undo("close")
        if self._server is not None:
            self._server.close()
        conns = list(self._conns)
        for conn in conns:
            conn.close()
        await asyncio.sleep(0)
        for side in (s for c in conns for s in (c.peer, c.target)):  # still flushing? close() is bounded
            if side.transport is not None:
                side.transport.abort()
        await asyncio.sleep(0)

    def __enter__(self) -> LinkProxy:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- faults (test thread) -----------------------------------------------------------------
    def cut(self) -> None:
        """Reset live connections and refuse new ones until ``restore``."""
        self._call(self._apply, "cut", {})

    def blackhole(self) -> None:
        """Accept and read everything, forward nothing, until ``restore``."""
        self._call(self._apply, "blackhole", {})

    def delay(self, mean_s: float, jitter_s: float = 0.0) -> None:
        """Hold each chunk ``mean_s`` ± uniform ``jitter_s`` (netem's default), order kept, each direction."""
        if mean_s < 0 or jitter_s < 0:
            raise ValueError("delay and jitter must be >= 0")
        self._call(self._apply, "delay", {"mean_s": mean_s, "jitter_s": jitter_s})

    def drop(self, percent: float) -> None:
        """Discard each forwarded chunk with probability ``percent``/100."""
        self._call(self._apply, "drop", {"percent": _percent(percent)})

    def corrupt(self, percent: float) -> None:
        """Flip each forwarded byte (XOR with a random non-zero mask) with probability ``percent``/100."""
        self._call(self._apply, "corrupt", {"percent": _percent(percent)})

    def flap(self, up_s: float, down_s: float, cycles: int | None = None) -> None:
        """Cut for ``down_s``, restore for ``up_s``, ``cycles`` times (None: until ``restore``/``close``);
        begins with the cut at once and always ends restored. One fault in the log."""
        if up_s < 0.001 or down_s < 0.001 or (cycles is not None and cycles < 1):
            raise ValueError("flap needs up_s, down_s >= 1 ms and cycles >= 1 (or None)")
        self._call(self._apply, "flap", {"up_s": up_s, "down_s": down_s, "cycles": cycles})

    def restore(self) -> None:
        """Back to a clean link: every fault ends (logged) and new connections are forwarded."""
        self._call(self._undo, "restore")

    def fault(self, kind: str, **params: Any) -> AbstractContextManager[LinkProxy]:
        """``with proxy.fault("delay", mean_s=0.2): ...`` — applied, yielded, always restored."""
        return fault_window(self, kind, LINK_STATES + IMPAIRMENTS, **params)

    @property
    def active_faults(self) -> list[str]:
        """Faults in effect now (a finished flap is no longer one)."""
        return self._call(lambda: sorted(self._events)) if self._running() else []

    @property
    def stats(self) -> dict[str, int]:
        if self._running():
            return self._call(lambda: dict(self._stats))
        return dict(self._stats)

    # ---- inside the loop ----------------------------------------------------------------------
    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._loop.is_closed()

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the loop and wait (bounded) for it to have taken effect."""
        if not self._running():
            raise RuntimeError(f"link proxy {self.name} is not running (start() it first)")

        async def run() -> Any:
            result = fn(*args)
            return await result if isinstance(result, Awaitable) else result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(CALL_TIMEOUT_S)

    async def _apply(self, kind: str, params: dict[str, Any]) -> None:
        if kind in LINK_STATES:
            for other in LINK_STATES:
                self._end(other, replaced_by=kind)
        self._end(kind, replaced_by=kind)
        self._events[kind] = self.faults.begin(self.dut, "link", kind, channel=self.name, injector="proxy",
                                               params=params)
        if kind in IMPAIRMENTS:
            self._params[kind] = params
        elif kind == "blackhole":
            self._mode = "blackhole"
            self.last_transition = time.time()
        elif kind == "cut":
            await self._go_down()
        else:
            self._flap_log = []
            self._flap = asyncio.ensure_future(self._flapping(**params))
            await asyncio.sleep(0)  # the first cut takes effect before flap() returns

    def _undo(self, reason: str) -> None:
        for kind in list(self._events):
            self._end(kind, reason=reason)
        self._params.clear()
        self._go_up()
        for conn in list(self._conns):
            conn.peer.flush(self._loop, now=True)  # a clean link holds nothing back
            conn.target.flush(self._loop, now=True)

    def _end(self, kind: str, **details: Any) -> None:
        event = self._events.pop(kind, None)
        if event is None:
            return
        self._params.pop(kind, None)
        was_down = self._mode != "up"
        if kind == "flap" and self._flap is not None and self._flap is not asyncio.current_task():
            self._flap.cancel()
        if kind in LINK_STATES:
            self._go_up()
        if kind == "flap":
            self._flap = None
            if was_down:  # ended during a down phase: the restore is its last transition
                self._flap_log.append((self.last_transition, "up"))
            details["transitions"] = [[round(t, 6), s] for t, s in self._flap_log[:1000]]
        self.faults.end(event, stats=dict(self._stats), **details)

    async def _go_down(self) -> None:
        self._mode = "cut"
        # Stamped before the first RST: a lower bound, so a switchover measured from it is never flattered.
        self.last_transition = time.time()
        for conn in list(self._conns):
            self._stats["reset"] += 1
            conn.reset()
        await asyncio.sleep(0)  # the aborted sockets are closed (RST sent) by callbacks queued before us

    def _go_up(self) -> None:
        if self._mode == "up":
            return
        if self._mode == "blackhole":
            orphaned = [c for c in self._conns if c.target.transport is None and c.dialling is None]
            for conn in [c for c in self._conns if c.broken] + orphaned:
                self._stats["reset"] += 1
                conn.reset()
        self._mode = "up"
        self.last_transition = time.time()

    async def _flapping(self, up_s: float, down_s: float, cycles: int | None) -> None:
        done = 0
        while cycles is None or done < cycles:
            await self._go_down()
            self._flap_log.append((self.last_transition, "down"))
            await asyncio.sleep(down_s)
            self._go_up()
            self._flap_log.append((self.last_transition, "up"))
            done += 1
            if cycles is None or done < cycles:
                await asyncio.sleep(up_s)
        self._end("flap", reason="cycles done", cycles_done=done)

    def _made(self, side: Side) -> None:
        conn = side.conn
        if side.role == "target":
            conn.peer.flush(self._loop)  # anything held for the upstream while dialling
            return
        self._stats["accepted"] += 1
        if self._mode == "cut":
            self._stats["refused"] += 1
            conn.reset()
            return
        self._conns.add(conn)
        self._stats["active"] = len(self._conns)
        if self._mode == "up":
            conn.peer.pause("dial", True)  # hold the peer until upstream is there
            conn.dialling = asyncio.ensure_future(self._dial(conn))

    async def _dial(self, conn: Connection) -> None:
        try:
            await asyncio.wait_for(self._loop.create_connection(lambda: conn.target, *self.target),
                                   self.connect_timeout_s)
        except (TimeoutError, OSError) as exc:
            self._stats["upstream_failed"] += 1
            log.debug("link proxy %s: upstream %s unreachable: %s", self.name, self.target, exc)
            conn.reset()
            return
        conn.dialling = None
        if conn.done:
            reset_transport(conn.target.transport)
        else:
            conn.peer.pause("dial", False)

    def _gone(self, conn: Connection) -> None:
        self._conns.discard(conn)
        self._stats["active"] = len(self._conns)

    def _forward(self, side: Side, data: bytes | None) -> None:
        """Apply the faults to one chunk (or FIN) received by ``side`` and queue it for the other side."""
        if side.conn.done:
            return
        if self._mode != "up":
            side.conn.broken = True
            self._stats["bytes_blackholed"] += len(data or b"")
            return
        rng = self._rng
        if data is not None:
            if "drop" in self._params and rng.random() * 100 < self._params["drop"]["percent"]:
                self._stats["chunks_dropped"] += 1
                return
            if "corrupt" in self._params:
                data = self._corrupt(data, self._params["corrupt"]["percent"] / 100)
            up = side.role == "peer"
            self._stats["bytes_up" if up else "bytes_down"] += len(data)
            self._stats["chunks_up" if up else "chunks_down"] += 1
        delay = 0.0
        if "delay" in self._params:
            mean, jitter = self._params["delay"]["mean_s"], self._params["delay"]["jitter_s"]
            delay = max(0.0, mean + (rng.uniform(-jitter, jitter) if jitter else 0.0))
        side.push(data, delay, self._loop)

    def _corrupt(self, data: bytes, p: float) -> bytes:
        """Flip bytes with probability ``p`` each; geometric gaps, so clean bytes cost nothing."""
        if p <= 0:
            return data
        rng, buf, flipped = self._rng, bytearray(data), 0
        log_q = math.log1p(-p) if p < 1 else None
        i = 0 if log_q is None else int(math.log(1.0 - rng.random()) / log_q)
        while i < len(buf):
            buf[i] ^= rng.randrange(1, 256)
            flipped += 1
            i += 1 if log_q is None else 1 + int(math.log(1.0 - rng.random()) / log_q)
        if flipped:
            self._stats["chunks_corrupted"] += 1
            self._stats["bytes_corrupted"] += flipped
        return bytes(buf)


def _percent(value: float) -> float:
    if not 0 <= value <= 100:
        raise ValueError(f"percent must be within 0..100, got {value}")
    return float(value)
