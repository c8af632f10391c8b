"""The controller's UA-TCP wire as a server: the robustness defects of its connections (cl. 49, IEC 62443-3-3
SR 7.1), one state per process shared by every connection.

``opcua_hang_on_flood``: after ``FLOOD_LIMIT`` service requests within ``FLOOD_WINDOW_S`` (every connection together)
the server stops answering for good: open connections stay open and get no answer to anything, new ones are
closed at once (the accept path finds no worker left to hand them to). ``FLOOD_LIMIT`` is
half of what a storm of reads on one session puts through the simulator in a second (~1000/s on loopback);
the window is three seconds so that a storm slowed by a loaded CI machine still sets it off, while a
client's ordinary polling (tens per second) stays far below 167/s sustained.

``opcua_half_open_blocks``: the server reads a UA-TCP message to its end before it serves anything else, with
no timeout: a connection that stalls half-way through a HEL or MSG stops every other connection until its
message completes or it closes (the Modbus wire's ``half_open_blocks``, on UA-TCP).

``opcua_connection_limit_exhausts``: the connection table (the declared ``opcua.max_connections``, else
``DEFAULT_CONNECTION_SLOTS``) loses its free list on the refusal path: once a connection has been refused for want
of a slot, a closed connection never frees its slot again — when the open ones close, every new one is closed at
once. (The golden server enforces a declared limit the plain way: a connection past it is closed at once.)

The per-connection ``GuardedProtocol`` (installed next to the processor by ``channel.install``) does the
framing part; the processor (channel.py) counts service requests and drops everything once hung.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Any

from asyncua.server.binary_server_asyncio import OPCUAProtocol

FLOOD_LIMIT = 500  # opcua_hang_on_flood: service requests within FLOOD_WINDOW_S before the server hangs
FLOOD_WINDOW_S = 3.0
DEFAULT_CONNECTION_SLOTS = 8  # opcua_connection_limit_exhausts on a profile that declares no max_connections
HANG, STALL, LEAK = "opcua_hang_on_flood", "opcua_half_open_blocks", "opcua_connection_limit_exhausts"


class UaWire:
    """Per process: the wire defects' state, shared by every connection."""

    def __init__(self, defects: set[str] | frozenset[str], max_connections: int | None) -> None:
        self.defects = set(defects)
        self.slots = max_connections or (DEFAULT_CONNECTION_SLOTS if LEAK in self.defects else None)
        self.active = 0
        self.leaking = False  # opcua_connection_limit_exhausts: a refusal has broken the free list
        self.hung = False
        self._recent: collections.deque[float] = collections.deque()
        self.stalled_by: GuardedProtocol | None = None
        self.waiting: list[GuardedProtocol] = []

    def admit(self) -> bool:
        """A new connection: taken while fewer than the limit are open, else closed at once."""
        if self.slots is not None and self.active >= self.slots:
            self.leaking = LEAK in self.defects
            return False
        self.active += 1
        return True

    def release(self) -> None:
        if not self.leaking:
            self.active = max(0, self.active - 1)

    def count_request(self) -> None:
        """One service request arrived (opcua_hang_on_flood counts them across connections)."""
        if HANG not in self.defects or self.hung:
            return
        now = time.monotonic()
        self._recent.append(now)
        while self._recent and self._recent[0] < now - FLOOD_WINDOW_S:
            self._recent.popleft()
        if len(self._recent) >= FLOOD_LIMIT:
            self.hung = True  # the request queue has overflowed into a state nothing leaves
            sys.stderr.write(f"opcua: {FLOOD_LIMIT} service requests within {FLOOD_WINDOW_S:g} s — the server "
                             "stops answering\n")
            sys.stderr.flush()

    def blocked(self, conn: GuardedProtocol) -> bool:
        """Is the server stuck in another connection's half message? Then ``conn``'s bytes wait their turn."""
        if self.stalled_by is None or self.stalled_by is conn:
            return False
        if conn not in self.waiting:
            self.waiting.append(conn)
        return True

    def stall(self, conn: GuardedProtocol) -> None:
        if STALL in self.defects and self.stalled_by is None:
            self.stalled_by = conn

    def unstall(self, conn: GuardedProtocol) -> None:
        """``conn``'s message is complete or its connection gone: the connections that waited are served."""
        if self.stalled_by is not conn:
            return
        self.stalled_by = None
        waiting, self.waiting = self.waiting, []
        for other in waiting:
            other.resume()


def wire_of(iserver: Any) -> UaWire | None:
    """The process's ``UaWire`` (made on first use from the device's defects; None: not the controller)."""
    device = getattr(iserver, "device", None)
    if device is None:
        return None
    wire = getattr(iserver, "ua_wire", None)
    if wire is None:
        wire = iserver.ua_wire = UaWire(device.defects, device.profile.max_connections)
    return wire


class GuardedProtocol(OPCUAProtocol):
    """asyncua's per-connection protocol; with ``opcua_half_open_blocks`` one message at a time, read to its end;
    once ``opcua_hang_on_flood`` has hung the server, closed as soon as it is accepted."""

    admitted = False

    def connection_made(self, transport: Any) -> None:
        wire = wire_of(self.iserver)
        if wire is not None and (wire.hung or not wire.admit()):
            transport.close()
            return
        self.admitted = wire is not None
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        wire = wire_of(self.iserver)
        if wire is None or STALL not in wire.defects:
            super().data_received(data)
            return
        if wire.blocked(self):
            self._buffer += data
            return
        super().data_received(data)
        if self._buffer and not self.transport_closing():
            wire.stall(self)
        else:
            wire.unstall(self)

    def transport_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def resume(self) -> None:
        """Bytes that waited behind another connection's half message are read now."""
        if not self.transport_closing() and self._buffer:
            self.data_received(b"")

    def connection_lost(self, ex: BaseException | None) -> None:
        wire = wire_of(self.iserver)
        if wire is not None:
            if self.admitted:
                self.admitted = False
                wire.release()
            wire.unstall(self)
            if self in wire.waiting:
                wire.waiting.remove(self)
        super().connection_lost(ex)
