"""Seeded defects of the golden AMR server below the application: in its HTTP/1.1 connection handling (uvicorn's
h11 protocol), where a real head-end's web stack fails under malformed input (cl. 49, IEC 62443-3-3 SR 3.5).

``http_hangs_on_malformed``: a connection whose first bytes are no valid request line (``METHOD target
HTTP/1.x``, RFC 9112 §3) makes the parser "spin" — the event loop is blocked for ``HANG_S`` before the
request is refused, so every other client, the authenticated meter-list read included, waits with it. Between
two stalls the server serves for at least ``HANG_S`` (a campaign's backlog of bad request lines would otherwise
keep it stalled for minutes, and the tests waiting on it with it)."""

from __future__ import annotations

import re
import time
from typing import Any

HANG_S = 3.0  # longer than any answer time an AMR profile would declare for a read
REQUEST_LINE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP/1\.[01]\r?\n")


def protocol(defects: set[str]) -> Any:
    """The uvicorn ``http`` setting: h11 (the golden server's stack), or a hanging variant of it."""
    if "http_hangs_on_malformed" not in defects:
        return "h11"
    from uvicorn.protocols.http.h11_impl import H11Protocol

    last_hang = [-HANG_S * 2]

    class HangingH11Protocol(H11Protocol):
        first = True

        def data_received(self, data: bytes) -> None:
            if self.first:
                self.first = False
                line_end = data.find(b"\n")
                if line_end >= 0 and not REQUEST_LINE.match(data[:line_end + 1]) \
                        and time.monotonic() - last_hang[0] > 2 * HANG_S:
                    time.sleep(HANG_S)  # blocks the whole event loop: the seeded defect
                    last_hang[0] = time.monotonic()
            super().data_received(data)

    return HangingH11Protocol
