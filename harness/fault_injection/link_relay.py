"""The byte relay under ``LinkProxy``: one accepted socket, its upstream twin, and between them an
ordered delay line per direction with flow control.

Kept apart from the proxy so that the proxy reads as fault semantics only; the relay knows nothing
of faults — it hands every chunk to ``on_data`` and writes what it is told to, when it is due.
All of it runs in the proxy's event-loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

QUEUE_HIGH = 1 << 20  # bytes held in a delay line before reading from the source is paused
EOF = None  # marker in a delay line: forward a FIN once the earlier bytes are out
_RST = struct.pack("ii", 1, 0)


def reset_transport(transport: asyncio.BaseTransport | None) -> None:
    """Close with RST: the peer sees ECONNRESET, as when a link is torn down."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
    transport.abort()  # type: ignore[attr-defined]


class Side(asyncio.Protocol):
    """One socket of a relayed connection (``peer``: accepted, ``target``: dialled) and the ordered
    delay line that holds the bytes it received on their way to the other side."""

    def __init__(self, conn: Connection, role: str) -> None:
        self.conn, self.role = conn, role
        self.transport: asyncio.Transport | None = None
        self.line: deque[tuple[float, bytes | None]] = deque()
        self.queued, self.last_due = 0, 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.paused: set[str] = set()  # why reading from this socket is paused (dial, queue, write)

    @property
    def other(self) -> Side:
        return self.conn.target if self.role == "peer" else self.conn.peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conn.on_made(self)

    def data_received(self, data: bytes) -> None:
        self.conn.on_data(self, data)

    def eof_received(self) -> bool:
        self.conn.on_data(self, EOF)
        return True  # keep the other direction open: a half-close is forwarded, not imposed

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.close()

    def pause_writing(self) -> None:
        self.other.pause("write", True)  # flow control: stop reading what we cannot write

    def resume_writing(self) -> None:
        self.other.pause("write", False)

    def pause(self, reason: str, on: bool) -> None:
        before = bool(self.paused)
        (self.paused.add if on else self.paused.discard)(reason)
        t = self.transport
        if t is not None and not t.is_closing() and before != bool(self.paused):
            if self.paused:
                t.pause_reading()
            else:
                t.resume_reading()

    def push(self, data: bytes | None, delay_s: float, loop: asyncio.AbstractEventLoop) -> None:
        if not self.line and delay_s <= 0 and self.other.transport is not None:
            self._write(data)
            return
        self.last_due = max(loop.time() + delay_s, self.last_due)  # never overtake: order is kept
        self.line.append((self.last_due, data))
        self.queued += len(data or b"")
        if self.queued > QUEUE_HIGH:
            self.pause("queue", True)
        self.flush(loop)

    def flush(self, loop: asyncio.AbstractEventLoop, now: bool = False) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.other.transport is None:
            return  # upstream still being dialled: flushed once it is connected
        while self.line and (now or self.line[0][0] <= loop.time()):
            data = self.line.popleft()[1]
            self.queued -= len(data or b"")
            self._write(data)
        if self.queued <= QUEUE_HIGH // 2:
            self.pause("queue", False)
        if self.line:
            self.timer = loop.call_at(self.line[0][0], self.flush, loop)

    def _write(self, data: bytes | None) -> None:
        t = self.other.transport
        if t is None or t.is_closing():
            return
        if data is not EOF:
            t.write(data)
            return
        if t.can_write_eof():
            t.write_eof()
        self.conn.eofs += 1
        if self.conn.eofs >= 2:
            self.conn.close()


class Connection:
    """A peer connection and its upstream twin. The callbacks are the owner's: ``on_made(side)`` when a
    socket is connected, ``on_data(side, chunk_or_EOF)`` for everything received, ``on_gone(conn)``."""

    def __init__(self, on_made: Callable[[Side], None], on_data: Callable[[Side, bytes | None], None],
                 on_gone: Callable[[Connection], None]) -> None:
        self.on_made, self.on_data, self.on_gone = on_made, on_data, on_gone
        self.peer, self.target = Side(self, "peer"), Side(self, "target")
        self.dialling: asyncio.Task[Any] | None = None
        self.broken = False  # the blackhole dropped something: the stream has a hole
        self.eofs = 0
        self.done = False

    def close(self) -> None:
        """Orderly close of both sides (bytes already written to a transport still go out)."""
        if self.done:
            return
        self.done = True
        if self.dialling is not None:
            self.dialling.cancel()
        for side in (self.peer, self.target):
            if side.timer is not None:
                side.timer.cancel()
            if side.transport is not None and not side.transport.is_closing():
                side.transport.close()
        self.on_gone(self)

    def reset(self) -> None:
        for side in (self.peer, self.target):
            reset_transport(side.transport)
        self.close()
