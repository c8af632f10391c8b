"""The golden AMR server's HTTP/1.1 connection handling (uvicorn's h11 protocol) and its seeded defects there, where
a real head-end's web stack fails under malformed input and connection load (cl. 49, IEC 62443-3-3 SR 3.5, 7.1).

The declared connection limit: uvicorn's ``limit_concurrency`` answers 503 to a request when the connections open
(its own included) reach the setting, so a server that serves ``max_connections`` at once runs with
``max_connections + 1``.

``http_hangs_on_malformed``: a connection whose first bytes are no valid request line (``METHOD target
HTTP/1.x``, RFC 9112 §3) makes the parser "spin" — the event loop is blocked for ``HANG_S`` before the
request is refused, so every other client, the authenticated meter-list read included, waits with it. Between
two stalls the server serves for at least ``2 * HANG_S`` (a campaign's backlog of bad request lines would
otherwise keep it stalled for minutes, and the tests waiting on it with it).

``http_connection_limit_leak``: a connection that closes while the server is at its limit is never freed: after
a storm up to the limit every new connection is answered 503.
"""

from __future__ import annotations

import re
import time
from typing import Any

HANG_S = 3.0  # longer than any answer time an AMR profile would declare for a read
REQUEST_LINE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP/1\.[01]\r?\n")
HTTP_DEFECTS = ("http_hangs_on_malformed", "http_connection_limit_leak")


def limit_concurrency(max_connections: int | None) -> int | None:
    return None if max_connections is None else max_connections + 1


def protocol(defects: set[str]) -> Any:
    """The uvicorn ``http`` setting: h11 (the golden server's stack), or a defective variant of it."""
    if not defects & set(HTTP_DEFECTS):
        return "h11"
    from uvicorn.protocols.http.h11_impl import H11Protocol

    last_hang = [-HANG_S * 2]
    hangs, leaks = "http_hangs_on_malformed" in defects, "http_connection_limit_leak" in defects

    class DefectiveH11Protocol(H11Protocol):
        first = True

        def data_received(self, data: bytes) -> None:
            if hangs and self.first:
                self.first = False
                line_end = data.find(b"\n")
                if line_end >= 0 and not REQUEST_LINE.match(data[:line_end + 1]) \
                        and time.monotonic() - last_hang[0] > 2 * HANG_S:
                    time.sleep(HANG_S)  # blocks the whole event loop: the seeded defect
                    last_hang[0] = time.monotonic()
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            limit = self.limit_concurrency
            at_limit = limit is not None and len(self.connections) >= limit - 1
            super().connection_lost(exc)
            if leaks and at_limit:
                self.connections.add(self)  # the seeded leak: its slot is never given back

        def shutdown(self) -> None:
            if self.transport.is_closing():  # a leaked one: nothing to close, let the server stop
                self.connections.discard(self)
                return
            super().shutdown()

    return DefectiveH11Protocol
