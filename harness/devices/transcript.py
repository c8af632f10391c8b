"""A record of every request and response, for evidence and for checking invariants afterwards.

One JSON object per line, handed to the kernel as it happens (one ``os.write`` on an unbuffered
``O_APPEND`` descriptor, before the answer goes back to the check), so a killed harness keeps every
exchange up to the kill; ``sync()`` makes it survive the host's power loss as well (fsync, for the
check boundaries). The rig's secrets are redacted as each line is written (``harness.redaction``).

Why it looks the way it does: certification always runs with the transcript on, so its cost is on
every read (issue 18). The line is encoded once with a prepared encoder; the redaction rule walks
the record only when the encoded line could hold a secret at all — a substring test for each form
of each secret as it appears in a JSON line, which holds whenever the rule would change a string of
the record (JSON escapes character by character) — so its output is exactly the rule's.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from harness.redaction import Redactor

# ensure_ascii as json.dumps: the line's bytes are what every reader of transcript.jsonl has always seen
_encode = json.JSONEncoder(separators=(",", ":")).encode
_PRIVATE_KEY = "PRIVATE KEY-----"  # what Redactor.data looks for before it tries its PEM pattern


def line_needles(redactor: Redactor) -> tuple[str, ...]:
    """Substrings of which an encoded line holds at least one whenever ``redactor.value`` would change
    a string in its record: every form the rule matches of every secret, as JSON writes it inside a
    string, and the private-key marker."""
    needles = {_PRIVATE_KEY}
    for secret in redactor.secrets:
        for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
            needles.add(json.dumps(form)[1:-1])
    return tuple(sorted(needles))


class Transcript:
    def __init__(self, path: Path, redactor: Redactor | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.redactor = redactor or Redactor()  # evidence: the rig's secrets never reach it
        self._needles = line_needles(self.redactor)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._lock = threading.Lock()

    def record(self, dut: str, **fields: Any) -> None:
        record = {"t": round(time.time(), 6), "dut": dut, **fields}
        line = _encode(record)
        if any(needle in line for needle in self._needles):
            line = _encode(self.redactor.value(record))
        data = (line + "\n").encode()
        with self._lock:
            if self._fd is not None:
                written = os.write(self._fd, data)
                if written < len(data):  # a regular file takes a line whole; a signal or a full disk may not
                    self._rest(data[written:])

    def _rest(self, data: bytes) -> None:
        while data:
            written = os.write(self._fd, data) if self._fd is not None else 0
            if written <= 0:
                raise OSError(f"{self.path}: the transcript takes no more bytes")
            data = data[written:]

    def sync(self) -> None:
        """Every line written so far on the disk (a check boundary: the host may lose power next)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.fsync(fd)
                os.close(fd)
