"""The figures of a soak, computed from its polls: availability, recoveries, response-time distribution.

Pure functions over what was measured, so the verdict is arithmetic anyone can redo from the
evidence file. Two choices worth knowing:

* **Availability is answered polls / attempts, and an outage counts for its whole length.** Polls are
  due on a fixed grid (one per interval). A poll that waits out a timeout makes the harness miss
  the polls that came due meanwhile; inside an outage — when the next poll goes unanswered too —
  those missed polls count as unanswered attempts, since any of them would have failed as well. So
  a device that is down is judged by the time it was down (counting only the polls made would
  flatter it: few timeouts fit into an outage), and a device that dropped one request by that one
  request, whatever the ratio of the lab's timeout to its interval.
* **The harness's own faults are not the device's.** A poll that overlaps a scheduled link-fault
  window (from the fault's first to its last moment, as the link reports them) is excluded and
  reported apart. What happens after the window — reconnecting, answering again — is the
  device's again, and counts.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass

from harness.reporting.texts import Msg


@dataclass(frozen=True)
class Window:
    """One scheduled link fault as it happened (harness wall time)."""

    kind: str
    begin: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.begin


class PollSeries:
    """Every poll of a soak, kept compactly: a 72-hour soak at 0.2 s is 1.3 million polls."""

    def __init__(self) -> None:
        self.start = array("d")
        self.end = array("d")
        self.due = array("I")  # polls that came due while it ran, itself included (> 1: it overran the interval)
        self.ok = bytearray()
        self.errors: dict[int, str] = {}

    def add(self, start: float, end: float, error: str | None, due: int) -> int:
        self.start.append(start)
        self.end.append(end)
        self.due.append(due)
        self.ok.append(error is None)
        if error is not None:
            self.errors[len(self.ok) - 1] = error
        return len(self.ok) - 1

    def __len__(self) -> int:
        return len(self.ok)

    def rtt(self, i: int) -> float:
        return self.end[i] - self.start[i]


def overlapping(polls: PollSeries, windows: Sequence[Window], lo: int = 0) -> bytearray:
    """For each poll from ``lo`` on: 1 if it overlaps a fault window (the harness's own outage), else 0."""
    out = bytearray(len(polls) - lo)
    if not windows:
        return out
    ordered = sorted(windows, key=lambda w: w.begin)
    k = 0
    for i in range(lo, len(polls)):  # polls and windows are both in time order: one pass
        s, e = polls.start[i], polls.end[i]
        while k < len(ordered) and ordered[k].end < s:
            k += 1
        out[i - lo] = k < len(ordered) and ordered[k].begin <= e
    return out


@dataclass(frozen=True)
class Availability:
    attempts: int  # polls outside the fault windows, and the polls missed inside an outage
    answered: int
    polls: int  # polls made outside the fault windows
    failed: int  # of them, unanswered
    excluded_polls: int  # polls overlapping a fault window
    excluded_failed: int

    @property
    def pct(self) -> float:
        return 100.0 * self.answered / self.attempts if self.attempts else math.nan

    def __add__(self, other: Availability) -> Availability:
        return Availability(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


NONE = Availability(0, 0, 0, 0, 0, 0)


def availability(polls: PollSeries, excluded: bytearray, lo: int = 0) -> Availability:
    """Of the polls from ``lo`` on (``excluded`` as ``overlapping`` gave it for them)."""
    attempts = answered = n = failed = ex = ex_failed = 0
    for i in range(lo, len(polls)):
        if excluded[i - lo]:
            ex += 1
            ex_failed += not polls.ok[i]
            continue
        n += 1
        attempts += 1
        if polls.ok[i]:
            answered += 1
            continue
        failed += 1
        following = i + 1
        if following < len(polls) and following - lo < len(excluded) and not excluded[following - lo] \
                and not polls.ok[following]:  # still down at the next poll: the missed ones would have failed
            attempts += polls.due[i] - 1
    return Availability(attempts, answered, n, failed, ex, ex_failed)


@dataclass(frozen=True)
class Recovery:
    """From the end of a fault window (or the first of a run of failed polls) to the end of the next answered poll."""

    cause: str
    since: float
    back: float | None  # None: no poll was answered again before the soak ended
    failed_polls: int  # unanswered polls in between (outside the window)

    @property
    def seconds(self) -> float | None:
        return None if self.back is None else max(0.0, self.back - self.since)


def fault_recoveries(polls: PollSeries, windows: Sequence[Window]) -> list[Recovery]:
    """For each fault window, when the device answered again after it ended."""
    out = []
    for n, w in enumerate(windows, 1):
        back, failed = None, 0
        for i in range(_first_ending_after(polls, w.end), len(polls)):
            if polls.ok[i]:
                back = polls.end[i]
                break
            failed += 1
        out.append(Recovery(Msg("link fault {n} ({kind})", n=n, kind=w.kind), w.end, back, failed))
    return out


def outage_recoveries(polls: PollSeries, excluded: bytearray) -> list[Recovery]:
    """Every run of unanswered polls outside the fault windows, and when the next answer came."""
    out, first, count = [], None, 0
    for i in range(len(polls)):
        if excluded[i]:
            continue
        if not polls.ok[i]:
            first = i if first is None else first
            count += 1
        elif first is not None:
            out.append(Recovery("failed poll", polls.start[first], polls.end[i], count))
            first, count = None, 0
    if first is not None:
        out.append(Recovery("failed poll", polls.start[first], None, count))
    return out


def failed_in(polls: PollSeries, window: Window) -> tuple[int, int]:
    """(polls overlapping the window, of them unanswered): did the fault take?"""
    total = failed = 0
    for i in range(_first_ending_after(polls, window.begin), len(polls)):
        if polls.start[i] > window.end:
            break
        total += 1
        failed += not polls.ok[i]
    return total, failed


def _first_ending_after(polls: PollSeries, t: float) -> int:
    lo, hi = 0, len(polls)
    while lo < hi:  # polls end in time order
        mid = (lo + hi) // 2
        if polls.end[mid] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (a value that was measured, never interpolated)."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def histogram(values: Iterable[float], max_bins: int = 30) -> list[tuple[float, int]]:
    """(bin centre, count) over [0, max] in bins of a round width (1, 2 or 5 × 10^n): readable axis labels."""
    values = list(values)
    if not values:
        return []
    top = max(values)
    raw = max(top / max_bins, 1e-9)
    exponent = 10 ** math.floor(math.log10(raw))
    width = next(m * exponent for m in (1, 2, 5, 10) if m * exponent >= raw)
    counts = [0] * (int(top // width) + 1)
    for v in values:
        counts[min(len(counts) - 1, int(v // width))] += 1
    return [((k + 0.5) * width, c) for k, c in enumerate(counts)]


def buckets(polls: PollSeries, excluded: bytearray, t0: float, width_s: float) -> list[tuple[float, float]]:
    """Answered polls per time bucket (bucket start in s since ``t0``, %), fault windows left out: where in a
    long soak the device was unavailable."""
    counts: dict[int, list[int]] = {}
    for i in range(len(polls)):
        if excluded[i]:
            continue
        got = counts.setdefault(int((polls.start[i] - t0) // width_s), [0, 0])
        got[0] += 1
        got[1] += polls.ok[i]
    return [(k * width_s, 100.0 * a / s) for k, (s, a) in sorted(counts.items()) if s]
