"""Reading one framed reply from a TCP socket by a deadline: the frame's own header says how long it is."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

MAX_FRAME = 1 << 16


def mbap_length(buf: bytes) -> int | None:
    """Modbus/TCP: the MBAP length field counts the bytes after it."""
    return 6 + struct.unpack(">H", buf[4:6])[0] if len(buf) >= 6 else None


def uatcp_length(buf: bytes) -> int | None:
    """OPC UA binary (UA-TCP): the message size is the uint32 after the type and chunk bytes."""
    return min(MAX_FRAME, struct.unpack("<I", buf[4:8])[0]) if len(buf) >= 8 else None


def read_frame(s: socket.socket, deadline: float, length: Callable[[bytes], int | None]) -> tuple[bytes | None, bool]:
    """One frame by ``deadline`` (``time.perf_counter``): (bytes or None, whether the peer closed or reset)."""
    buf = b""
    while True:
        need = length(buf)
        if need is not None and len(buf) >= max(need, 1):
            return buf, False
        left = deadline - time.perf_counter()
        if left <= 0:
            return (buf or None), False
        s.settimeout(left)
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            return (buf or None), False
        except OSError:
            return (buf or None), True
        if not chunk:
            return (buf or None), True
        buf += chunk
        if len(buf) > MAX_FRAME:
            return buf, False
