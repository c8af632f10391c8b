"""A record of every request and response, for evidence and for checking invariants afterwards.

One JSON object per line, written and flushed as it happens, so a killed run keeps every
exchange up to the kill; the rig's secrets are redacted as each line is written
(``harness.redaction``).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any

from harness.redaction import Redactor


class Transcript:
    def __init__(self, path: Path, redactor: Redactor | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.redactor = redactor or Redactor()  # evidence: the rig's secrets never reach it
        self._file: IO[str] | None = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def record(self, dut: str, **fields: Any) -> None:
        record = self.redactor.value({"t": round(time.time(), 6), "dut": dut, **fields})
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            if self._file:
                self._file.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            if self._file:
                self._file.close()
                self._file = None
