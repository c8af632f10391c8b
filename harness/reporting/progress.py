"""Progress a person can follow through a long certification run.

A run may take a minute on a simulated rig or days on a lab bench (soak runs, 12-month journals
on real time). Every finished check prints one plain line — counted, timed, with the elapsed time
and an estimate of what is left — so a log file or CI output reads as well as a terminal. On a
terminal a live status line also names the suite and check running now, overwritten in place.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

from harness.reporting.records import CheckRecord
from harness.verdicts import Verdict

PROGRESS_FILE_ENV = "HARNESS_PROGRESS_FILE"  # a fleet worker follows the run through it (harness.fleet.task)


def _publish(event: dict[str, Any]) -> None:
    """One JSON line per started/finished check, for whoever runs this run (kept outside the run folder)."""
    path = os.environ.get(PROGRESS_FILE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")


def clock(seconds: float) -> str:
    """``75`` → ``1:15``, ``3725`` → ``1:02:05``."""
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts checks done and left; estimates the rest from the mean duration so far."""

    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None) -> None:
        self.total, self.done = total, done
        self.stream = stream or sys.stdout
        self.t0 = time.monotonic()
        self.finished_here = 0  # checks finished in this process (a resumed run's earlier ones took no time here)
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._status_shown = False

    def eta_s(self) -> float | None:
        if not self.finished_here:
            return None
        return (time.monotonic() - self.t0) / self.finished_here * max(0, self.total - self.done)

    def _timing(self) -> str:
        eta = self.eta_s()
        left = f", ~{clock(eta)} left" if eta is not None and self.done < self.total else ""
        return f"{clock(time.monotonic() - self.t0)} elapsed{left}"

    def started(self, suite: str, check_id: str, dut: str) -> None:
        """The live line (terminals only): what runs now."""
        _publish({"event": "started", "check": check_id, "dut": dut, "done": self.done, "total": self.total})
        if not self.live:
            return
        self.stream.write(f"\r\033[K  ▶ [{self.done + 1}/{self.total}] {suite} {check_id} on {dut} — "
                          f"{self._timing()}")
        self.stream.flush()
        self._status_shown = True

    def finished(self, record: CheckRecord) -> None:
        self.done += 1
        self.finished_here += 1
        _publish({"event": "finished", "check": record.id, "dut": record.dut, "verdict": record.verdict.value,
                  "done": self.done, "total": self.total})
        if self._status_shown:
            self.stream.write("\r\033[K")
            self._status_shown = False
        reason = f" — {record.reason}" if record.reason and record.verdict != Verdict.PASS else ""
        width = len(str(self.total))
        self.stream.write(f"  [{self.done:>{width}}/{self.total}] {record.id:9} {record.verdict.value:12} "
                          f"{record.dut:10} {record.title} ({record.duration_s:.1f} s; {self._timing()}){reason}\n")
        self.stream.flush()
