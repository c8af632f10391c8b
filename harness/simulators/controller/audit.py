"""The controller's audit log (cl. 69): who did what, when, with which outcome — in non-volatile memory.

Each entry is appended to ``audit.jsonl`` and fsynced before the action it records is answered, so
a SIGKILL never loses an entry a client could have seen acknowledged; a torn last line (the cut
came mid-write) is dropped at power-up. The log holds ``capacity`` entries and overwrites the
oldest; the file is compacted (temp + fsync + rename) when it has grown well past that. Kinds are
the canonical ones of the contract; the OPC UA side (audit_events.py) maps them to the profile's
category strings. Defects: ``log_volatile`` keeps the same structure in RAM only,
``log_missing_user`` records no user, ``log_capacity_short`` (device.py) is made with a
``SHORT_CAPACITY_DIVISOR``-th of the declared capacity.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.durable import write_atomically

KINDS = ("control_action", "login_success", "login_failure", "settings_change", "alarm", "firmware_update",
         "security_event", "log_cleared")
SYSTEM = "system"  # the user of what the device does by itself (health check, scheduled actions)
SHORT_CAPACITY_DIVISOR = 4  # log_capacity_short: the log really holds capacity ÷ this


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: float  # device time, UTC seconds since the epoch
    kind: str
    user: str
    outcome: bool
    subject: str
    message: str
    old: Any = None
    new: Any = None


class AuditLog:
    FILE = "audit.jsonl"

    def __init__(self, state_dir: Path, capacity: int, volatile: bool = False, record_user: bool = True) -> None:
        self.path = state_dir / self.FILE
        self.capacity, self.volatile, self.record_user = capacity, volatile, record_user
        self.entries: deque[AuditEntry] = deque(maxlen=capacity)
        self.next_seq = 1
        self.listeners: list[Callable[[AuditEntry], None]] = []
        self._lines = 0
        self._fd: int | None = None
        if volatile:
            return
        if self._load() > len(self.entries):  # a torn line, or more than the capacity: rewrite what is kept
            self._compact()

    # ---- recording ----------------------------------------------------------------------------
    def record(self, kind: str, time: float, user: str, outcome: bool, subject: str, message: str,
               old: Any = None, new: Any = None) -> AuditEntry:
        """Append one entry, on disk before this returns; listeners (the OPC UA event emitter) are told."""
        entry = self._make(kind, time, user, outcome, subject, message, old, new)
        self._append([entry])
        for listener in self.listeners:
            listener(entry)
        return entry

    def record_many(self, entries: Iterable[tuple[str, float, str, bool, str, str]]) -> int:
        """Many entries with one fsync (history synthesised for retention checks); no live events."""
        made = [self._make(*e) for e in entries]
        self._append(made)
        return len(made)

    def clear(self, time: float, user: str) -> AuditEntry:
        """Empty the log; the clearing itself is its first entry."""
        self.entries.clear()
        if not self.volatile:
            self._rewrite([])
        return self.record("log_cleared", time, user, True, "AuditLog", "audit log cleared")

    # ---- reading ------------------------------------------------------------------------------
    def between(self, start: float | None, end: float | None) -> list[AuditEntry]:
        """Entries with start <= time <= end, oldest first (either bound may be open). Sorted by time, not by
        recording order: a clock set backwards records later entries with earlier times."""
        lo = float("-inf") if start is None else start
        hi = float("inf") if end is None else end
        return sorted((e for e in self.entries if lo <= e.time <= hi), key=lambda e: (e.time, e.seq))

    def __len__(self) -> int:
        return len(self.entries)

    # ---- storage ------------------------------------------------------------------------------
    def _make(self, kind: str, time: float, user: str, outcome: bool, subject: str, message: str,
              old: Any = None, new: Any = None) -> AuditEntry:
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}")
        entry = AuditEntry(self.next_seq, time, kind, user if self.record_user else "", outcome, subject, message,
                           old, new)
        self.next_seq += 1
        return entry

    def _append(self, entries: list[AuditEntry]) -> None:
        self.entries.extend(entries)
        if self.volatile or not entries:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, b"".join(_line(e) for e in entries))
        os.fsync(self._fd)
        self._lines += len(entries)
        if self._lines > self.capacity + max(1000, self.capacity // 2):
            self._compact()

    def _load(self) -> int:
        """Entries from the file (the newest ``capacity``); the number of lines it had."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return 0
        for line in lines:
            try:
                entry = AuditEntry(**json.loads(line))
            except (ValueError, TypeError):
                continue  # the line a power cut tore
            self.entries.append(entry)
            self.next_seq = max(self.next_seq, entry.seq + 1)
        self._lines = len(lines)
        return len(lines)

    def _compact(self) -> None:
        self._rewrite(list(self.entries))

    def _rewrite(self, entries: list[AuditEntry]) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, b"".join(_line(e) for e in entries))
        self._lines = len(entries)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _line(entry: AuditEntry) -> bytes:
    return json.dumps(asdict(entry), separators=(",", ":"), default=str).encode() + b"\n"
