"""The golden AMR server's clock and polling schedule, and the control channel that makes its time pass.

The server keeps one clock (:class:`SimClock`): wall time plus whatever the control channel advanced. Its
automatic readings follow a schedule in that clock: meter *i* of *N* is read at ``origin + k·interval +
(i + ½)·interval/N`` — the reads of one cycle spread over the interval, each in the middle of its slot, as a
head-end spreads its load on the channel. Left alone the schedule runs in wall time; an ``advance`` over the
control channel runs, in time order, every read (and every pending manual reading) that falls in the advanced
span, the clock set to each read's time, and only then moves the clock to the span's end. The harness advances
the field meters to each read's time before it asks the server to (``harness.fault_injection.field_time``), so
the server reads each meter at the moment its reading is stamped — in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.simulators.control import advance_seconds

if TYPE_CHECKING:
    from harness.simulators.amr_server.poller import FieldMeter, Poller

MISSED_EVERY = 20  # the reading_interval_missed defect: every 20th cycle of a meter is lost (2 or 3 a day at 30 min)


class SimClock:
    """The server's time: wall time plus what the control channel advanced (it never runs backwards). With a
    ``path`` the advance is kept there, so a server killed and restarted goes on in the time it had reached."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.offset = 0.0
        if path is not None and path.exists():
            with contextlib.suppress(ValueError, OSError):
                self.offset = float(json.loads(path.read_text(encoding="utf-8"))["offset_s"])

    def now(self) -> float:
        return time.time() + self.offset

    def jump_to(self, t: float) -> None:
        ahead = t - self.now()
        if ahead > 0:
            self.offset += ahead
            if self.path is not None:
                self.path.write_text(json.dumps({"offset_s": self.offset}), encoding="utf-8")

    @staticmethod
    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


class PollSchedule:
    """When each field meter is read automatically, and the runner of those reads in wall or advanced time."""

    def __init__(self, poller: Poller, interval_s: float, defects: set[str]) -> None:
        self.poller = poller
        self.clock = poller.clock
        self.interval_s = interval_s
        self.defects = defects
        self.origin = self.clock.now()
        self.slots = {m: (i + 0.5) * interval_s / max(1, len(poller.meters)) for i, m in enumerate(poller.meters)}
        self.cycle = dict.fromkeys(poller.meters, 0)  # per meter: the next cycle to read
        self.lock = asyncio.Lock()  # one runner at a time: the wall-time loop or an advance
        self.woken = asyncio.Event()

    def due(self, meter_id: str) -> float:
        return self.origin + self.cycle[meter_id] * self.interval_s + self.slots[meter_id]

    def next_due(self) -> tuple[float, list[str]]:
        """The time of the next automatic read and the meters due then."""
        if not self.cycle:
            return float("inf"), []
        t = min(self.due(m) for m in self.cycle)
        return t, [m for m in self.cycle if self.due(m) == t]

    async def run_due(self, until: float) -> None:
        """Every read due at or before ``until``, in time order, the clock set to each one's time first."""
        while (got := self.next_due())[0] <= until:
            t, ids = got
            self.clock.jump_to(t)
            meters = [self.poller.meters[m] for m in ids if not self._lost(m)]
            cycle_start = {m: self.origin + self.cycle[m] * self.interval_s for m in ids}
            for m in ids:
                self.cycle[m] += 1
            read = await asyncio.gather(*(self._read(m, cycle_start[m.id]) for m in meters))
            self.poller.store([r for r in read if r is not None])  # one commit per slot, listed only after it

    async def _read(self, meter: FieldMeter, cycle_start: float) -> Any:
        stamp = cycle_start if "reading_time_is_poll_start" in self.defects else None
        return await self.poller.read(meter, "auto", store=False, stamp=stamp)

    def _lost(self, meter_id: str) -> bool:
        return "reading_interval_missed" in self.defects and self.cycle[meter_id] % MISSED_EVERY == MISSED_EVERY - 1

    async def run(self) -> None:
        """Reads in wall time until cancelled. After a stall (the process was stopped, the host was busy) the
        cycles missed in wall time are skipped, not read in a burst: nobody advanced time, the server fell
        behind."""
        while True:
            t, _ = self.next_due()
            self.woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.woken.wait(), max(0.0, min(t - self.clock.now(), 3600.0)))
            async with self.lock:
                now = self.clock.now()
                for m in self.cycle:
                    while self.due(m) < now - self.interval_s:
                        self.cycle[m] += 1
                await self.run_due(now)

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of server time pass: pending manual readings first (they were asked for before), then
        every automatic read due in the span at its own time, then the clock to the span's end."""
        async with self.lock:
            await self.poller.settle()
            target = self.clock.now() + seconds
            await self.run_due(target)
            self.clock.jump_to(target)
        self.woken.set()

    async def control(self, req: dict[str, Any]) -> dict[str, Any]:
        """The control channel: ``advance`` {seconds} and ``status``; both answer the clock and the next read."""
        op = str(req.get("op"))
        if op == "advance":
            await self.advance(advance_seconds(req))
        elif op != "status":
            raise ValueError(f"unknown op {op!r}; ops: status, advance")
        next_due, due = self.next_due()
        return {"ok": True, "physical": self.clock.now(), "next_due": next_due, "due": due,
                "interval_s": self.interval_s}
