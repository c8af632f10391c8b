"""Every fault the harness injects is evidence: what, on which DUT, from when to when."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any


class FaultLog:
    """Appends one JSON line when a fault begins and one when it is undone (faults.jsonl)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _write(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def begin(self, dut: str, kind: str, what: str, **details: Any) -> int:
        event = next(self._ids)
        self._write({"event": event, "phase": "begin", "t": time.time(), "dut": dut, "kind": kind, "what": what,
                     **details})
        return event

    def end(self, event: int, **details: Any) -> None:
        self._write({"event": event, "phase": "end", "t": time.time(), **details})
