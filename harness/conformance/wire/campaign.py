"""Bounded TCP campaigns against one endpoint: fuzz cases, request storms, connection storms and half-open
connections — the attacks of the robustness suite, protocol-neutral (a frame reader and a "valid reply"
test come with the protocol).

Every campaign is bounded in count (its arguments), rate (``Pacer``, the rig's ``rate_per_s``) and time
(the rig's ``max_duration_s``); it stops early when ``stop()`` says the essential function is gone, and it
records its whole conversation, the reproducer's raw material. Callers pass only targets that
``safety.refusal`` allowed.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.conformance.wire.modbus_fuzz import Case
from harness.conformance.wire.reproducer import Conversation
from harness.conformance.wire.tcp import read_frame

Length = Callable[[bytes], int | None]
Valid = Callable[[bytes | None], bool]
MISSES_BEFORE_GIVING_UP = 3  # a storm connection that got no answer this many times in a row stops asking


class Pacer:
    """At most ``rate`` sends per second across every thread of a campaign, until ``deadline``."""

    def __init__(self, rate: float, deadline: float) -> None:
        self.interval = 1.0 / rate
        self.deadline = deadline
        self._next = time.perf_counter()
        self._lock = threading.Lock()

    def wait(self) -> bool:
        """Sleep until the next send may go; False once the campaign's time is up."""
        with self._lock:
            now = time.perf_counter()
            slot = max(self._next, now)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
        return time.perf_counter() < self.deadline


@dataclass(frozen=True)
class CaseOutcome:
    case: Case
    conn: int
    t_sent: float  # wall time
    reply: bytes | None
    closed: bool
    refused: str | None = None  # the connection could not be made (why)


@dataclass
class Storm:
    """Connections a storm or a half-open hold left open, and what each got."""

    sockets: list[tuple[int, socket.socket]] = field(default_factory=list)
    served: int = 0
    refused: int = 0
    unanswered: int = 0


@dataclass
class Flood:
    sent: int = 0
    answered: int = 0
    latencies_s: list[float] = field(default_factory=list)
    gave_up: int = 0  # connections that stopped after MISSES_BEFORE_GIVING_UP unanswered requests
    elapsed_s: float = 0.0


class Campaign:
    """One campaign against ``host:port``; ``settings`` is the rig's ``robustness``."""

    def __init__(self, host: str, port: int, settings: Any, length: Length,
                 record: Callable[..., None] | None = None) -> None:
        self.host, self.port, self.settings, self.length = host, port, settings, length
        self.conversation = Conversation(host, port)
        self.record = record
        self.started = time.perf_counter()
        self.deadline = self.started + settings.max_duration_s
        self.pacer = Pacer(settings.rate_per_s, self.deadline)
        self._conn_ids = itertools.count(1)
        self._ids_lock = threading.Lock()

    # ---- one connection ---------------------------------------------------------------------------
    def open(self, timeout_s: float) -> tuple[int, socket.socket | None, str | None]:
        with self._ids_lock:
            conn = next(self._conn_ids)
        self.conversation.add(conn, "open")
        try:
            s = socket.create_connection((self.host, self.port), timeout=timeout_s)
        except OSError as exc:
            return conn, None, type(exc).__name__
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, s, None

    def send(self, conn: int, s: socket.socket, data: bytes) -> bool:
        self.conversation.add(conn, "send", data)
        try:
            s.sendall(data)
        except OSError:
            return False
        return True

    def receive(self, conn: int, s: socket.socket, wait_s: float) -> tuple[bytes | None, bool]:
        raw, closed = read_frame(s, time.perf_counter() + wait_s, self.length)
        if raw:
            self.conversation.add(conn, "reply", raw)
        return raw, closed

    def close(self, conn: int, s: socket.socket) -> None:
        self.conversation.add(conn, "close")
        with contextlib.suppress(OSError):
            s.close()

    def exchange(self, data: bytes, wait_s: float, connect_timeout_s: float) -> tuple[int, bytes | None, str | None]:
        """A fresh connection, one frame, its reply, closed: (conn, reply, why no connection)."""
        conn, s, refused = self.open(connect_timeout_s)
        if s is None:
            return conn, None, refused
        reply = self.receive(conn, s, wait_s)[0] if self.send(conn, s, data) else None
        self.close(conn, s)
        return conn, reply, None

    # ---- campaigns --------------------------------------------------------------------------------------
    def fuzz(self, cases: list[Case], stop: Callable[[], bool], connect_timeout_s: float) -> list[CaseOutcome]:
        """Each case on a fresh connection (so that one case's leftovers never change the next one's meaning),
        its answer awaited for ``case_timeout_s``. Stops when the DUT no longer takes connections."""
        outcomes: list[CaseOutcome] = []
        self.start_clock()  # building the cases (scapy) took none of the device's time
        for case in cases:
            if stop() or not self.pacer.wait():
                break
            t_sent = time.time()
            conn, s, refused = self.open(connect_timeout_s)
            if s is None:
                outcomes.append(CaseOutcome(case, conn, t_sent, None, False, refused))
                break
            reply, closed = None, False
            if self.send(conn, s, case.frame):
                reply, closed = self.receive(conn, s, self.settings.case_timeout_s)
            self.close(conn, s)
            outcomes.append(CaseOutcome(case, conn, t_sent, reply, closed))
            if self.record is not None:
                self.record(op="fuzz", case=case.index, family=case.family, what=case.what, sent=case.frame.hex(),
                            received=reply.hex() if reply else None, closed=closed)
        return outcomes

    def flood(self, frame: Callable[[int], bytes], valid: Valid, count: int, connections: int, wait_s: float,
              stop: Callable[[], bool]) -> Flood:
        """``count`` valid requests as fast as the rate bound allows, each answer awaited (lockstep) on each of
        ``connections`` connections in parallel."""
        result = Flood()
        numbers = itertools.count()
        lock = threading.Lock()

        def worker() -> None:
            conn, s, _ = self.open(wait_s)
            if s is None:
                return
            misses = 0
            while not stop() and self.pacer.wait():
                with lock:
                    n = next(numbers)
                if n >= count:
                    break
                t0 = time.perf_counter()
                if not self.send(conn, s, frame(n)):
                    break
                reply, closed = self.receive(conn, s, wait_s)
                with lock:
                    result.sent += 1
                    if valid(reply):
                        result.answered += 1
                        result.latencies_s.append(time.perf_counter() - t0)
                misses = 0 if valid(reply) else misses + 1
                if closed or misses >= MISSES_BEFORE_GIVING_UP:
                    with lock:
                        result.gave_up += 1
                    break
            self.close(conn, s)

        threads = [threading.Thread(target=worker, daemon=True, name=f"flood-{i}") for i in range(connections)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, self.deadline - time.perf_counter()) + wait_s + 1.0)
        result.elapsed_s = time.perf_counter() - t0
        return result

    def storm(self, count: int, probe: bytes, valid: Valid, wait_s: float) -> Storm:
        """``count`` connections opened one after the other and kept open, each asked one valid request."""
        storm = Storm()
        for _ in range(count):
            if not self.pacer.wait():
                break
            conn, s, _ = self.open(wait_s)
            if s is None:
                storm.refused += 1
                continue
            storm.sockets.append((conn, s))
            reply, closed = self.receive(conn, s, wait_s) if self.send(conn, s, probe) else (None, True)
            if valid(reply):
                storm.served += 1
            elif closed or reply:
                # accepted, then closed at once, or answered with a refusal (HTTP 503, RFC 9110 §15.6.4; a Modbus
                # exception): refused the polite way
                storm.refused += 1
            else:
                storm.unanswered += 1
        return storm

    def half_open(self, count: int, probe: bytes, wait_s: float) -> Storm:
        """``count`` connections that never complete a request: every other one sends nothing at all, the
        rest half a frame, and all of them stall."""
        held = Storm()
        for i in range(count):
            if not self.pacer.wait():
                break
            conn, s, _ = self.open(wait_s)
            if s is None:
                held.refused += 1
                continue
            held.sockets.append((conn, s))
            if i % 2:
                self.send(conn, s, probe[:max(1, len(probe) // 2)])
        return held

    def release(self, held: Storm) -> None:
        for conn, s in held.sockets:
            self.close(conn, s)
        held.sockets.clear()

    def fresh_connections_served(self, probe: bytes, valid: Valid, tries: int, wait_s: float) -> int:
        """After an attack: how many of ``tries`` new connections, one after the other, are served."""
        served = 0
        for _ in range(tries):
            _, reply, _ = self.exchange(probe, wait_s, wait_s)
            served += bool(valid(reply))
        return served

    def start_clock(self) -> None:
        """The time bound (``max_duration_s``) counts from now."""
        self.started = time.perf_counter()
        self.deadline = self.started + self.settings.max_duration_s
        self.pacer = Pacer(self.settings.rate_per_s, self.deadline)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started
