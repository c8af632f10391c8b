"""The availability soak: poll every declared quantity at the interval for the rig's duration.

What a head-end does, measured: one ``read_many`` of every point the profile declares per poll,
through the Device API (so a Modbus meter and an OPC UA controller are soaked alike) — of an AMR
server, one declared read-only call of its API (``pollers.py``) — on a fixed grid of due times,
optionally while the rig's link-fault schedule plays (``link_schedule.py``).

The soak polls with a Device (or AMR adapter) of its own — the same driver and endpoint as ``dut.device``,
through the rig's link fault — with **no retries**: a request the device leaves unanswered is a failed poll, not
something a retry hides (the rig's retries still set the recovery bound of KZ-73-01), and **no
transcript**: a 72-hour soak would add millions of lines to it; the soak's own evidence file has one
line per poll instead.

The evidence file (``OUTDIR/availability/<dut>-<n>.jsonl``) is written as the soak goes, flushed
after every poll and fsynced with a summary line every minute, so a run stopped early (Ctrl-C,
kill -9) keeps what it measured; the verdict is computed at the end from the polls in memory, and a
resumed run soaks again into a new file. One soak is judged by both checks (KZ-67-01, KZ-73-01): a
lab's soak lasts days. A re-run of a failing check re-judges the same soak — polling the same device
for another 72 hours is not flake detection, and its verdict would be the same arithmetic.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.conformance.availability.figures import (
    NONE,
    Availability,
    PollSeries,
    Window,
    availability,
    overlapping,
    percentile,
)
from harness.conformance.availability.link_schedule import LinkFaultSchedule, link_for
from harness.conformance.availability.pollers import SoakPoller, poller_for
from harness.devices.api import DeviceError
from harness.reporting.outcome import exc_text

if TYPE_CHECKING:
    from harness.config.availability import AvailabilitySoak

KEY = "availability_soak"
SUMMARY_EVERY_S = 60.0


@dataclass
class Soak:
    """Everything one soak measured."""

    dut: str
    spec: AvailabilitySoak
    interval_s: float
    quantities: list[str]
    evidence: Path
    what: str = ""  # one poll in words (pollers.py)
    t0: float = 0.0
    t_end: float = 0.0
    polls: PollSeries = field(default_factory=PollSeries)
    windows: list[Window] = field(default_factory=list)
    faults_not_played: str | None = None  # why the rig's schedule was not played on this DUT
    schedule_error: str | None = None

    @property
    def excluded(self) -> bytearray:
        return overlapping(self.polls, self.windows)


def soak_for(dut: Any, spec: AvailabilitySoak) -> Soak:
    """The DUT's soak: made by the first check that needs it, judged by the others (and by re-runs)."""
    soak = dut.observations.get(KEY)
    if soak is None:
        soak = run_soak(dut, spec)
        dut.observations[KEY] = soak
    return soak


class SoakLog:
    """The evidence file: one JSON object per line, flushed per line; ``sync`` makes it survive a power loss."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()  # the link-fault thread writes its edges too

    def write(self, **record: Any) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def sync(self) -> None:
        with self._lock:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()


def _evidence_path(dut: Any) -> Path:
    folder = dut.out_dir / "availability"
    n = 1
    while (folder / f"{dut.name}-{n}.jsonl").exists():  # a resumed or repeated soak never overwrites one
        n += 1
    return folder / f"{dut.name}-{n}.jsonl"


def run_soak(dut: Any, spec: AvailabilitySoak) -> Soak:
    device = poller_for(dut)  # INCONCLUSIVE when the profile declares nothing to poll
    soak = Soak(dut.name, spec, spec.interval_for(dut.profile.availability), device.names, _evidence_path(dut),
                what=device.what)
    link = None
    if spec.link_faults:
        link, soak.faults_not_played = link_for(dut, spec.link, {f.kind for f in spec.link_faults})
    due = max(1, math.floor(spec.duration_s / soak.interval_s + 1e-9))  # polls on the grid
    log = SoakLog(soak.evidence)
    status = "interrupted"
    try:
        soak.t0 = time.time()
        log.write(type="start", dut=dut.name, t0=round(soak.t0, 6), interval_s=soak.interval_s,
                  duration_s=spec.duration_s, polls_due=due, target_pct=spec.target_pct, quantities=soak.quantities,
                  request_timeout_s=dut.timing.request_timeout_s, retries=0,
                  link_faults=[f.model_dump() for f in spec.schedule] if link is not None else [],
                  faults_not_played=soak.faults_not_played)
        if link is None:
            _poll(device, soak, due, log, None)
        else:
            schedule = LinkFaultSchedule(link, spec.schedule, soak.t0, log.write)
            try:
                with schedule:
                    _poll(device, soak, due, log, schedule)
            finally:
                soak.windows, soak.schedule_error = schedule.windows(now=time.time()), schedule.error
        status = "finished"
    finally:
        soak.t_end = time.time()
        try:
            device.close()
        finally:
            _summary(log, soak, "end", availability(soak.polls, soak.excluded), 0, status=status,
                     windows=[[w.kind, round(w.begin, 6), round(w.end, 6)] for w in soak.windows])
            log.close()
    return soak


def _poll(device: SoakPoller, soak: Soak, due: int, log: SoakLog, schedule: LinkFaultSchedule | None) -> None:
    """Poll on the grid of due times; a poll that overruns its interval makes the harness skip the ones that came
    due meanwhile (recorded with it as ``due``: figures.py decides what they count for)."""
    polls, t0, interval = soak.polls, soak.t0, soak.interval_s
    slot, summarised, next_summary, so_far = 0, 0, t0 + SUMMARY_EVERY_S, NONE
    while slot < due:
        wait = t0 + slot * interval - time.time()
        if wait > 0:
            time.sleep(min(wait, interval))  # bounded even if the wall clock steps back
        start = time.time()
        try:
            device.poll()
            error = None
        except DeviceError as exc:
            error = exc_text(exc)  # the driver's Msg where it raised one: translated in the check's note
        end = time.time()
        following = min(due, max(slot + 1, math.ceil((end - t0) / interval)))
        n = polls.add(start, end, error, following - slot)
        record: dict[str, Any] = {"type": "poll", "n": n, "t": round(start, 6), "rtt_ms": round((end - start) * 1e3, 3),
                                  "ok": error is None, "due": following - slot}
        if error is not None:
            record["error"] = error
        log.write(**record)
        slot = following
        if end >= next_summary:  # counted incrementally: a minute line must not cost more as the days pass
            windows = schedule.windows(now=end) if schedule is not None else []
            so_far += availability(polls, overlapping(polls, windows, summarised), summarised)
            _summary(log, soak, "minute", so_far, summarised)
            log.sync()
            summarised, next_summary = len(polls), next_summary + SUMMARY_EVERY_S


def _summary(log: SoakLog, soak: Soak, kind: str, a: Availability, since: int, **extra: Any) -> None:
    """A summary line: the soak so far ``a`` (fault windows left out), and the response times of the polls
    since ``since`` (a minute line: that minute's; the end line: all of them)."""
    polls = soak.polls
    rtts = sorted(polls.rtt(i) * 1e3 for i in range(since, len(polls)) if polls.ok[i])
    log.write(type=kind, t=round(time.time(), 6), elapsed_s=round(time.time() - soak.t0, 3), polls=a.polls,
              failed=a.failed, attempts=a.attempts, answered=a.answered, excluded_polls=a.excluded_polls,
              availability_pct=None if math.isnan(a.pct) else round(a.pct, 4),
              rtt_ms={q: round(percentile(rtts, q), 3) for q in (50, 99)} if rtts else None,
              rtt_ms_max=round(rtts[-1], 3) if rtts else None, **extra)
