"""Time for an AMR server and its field together: one ``dut.time`` advances the server and every field meter.

An AMR server's readings are only as true as the moment they are taken: the server reads a meter at some time
and stamps the reading with it; the harness judges the value against its own reads of that meter at that time.
On simulators the whole bench must therefore move in lockstep. :class:`FieldTime` asks the server (its control
channel, which answers when its next automatic read is due) and walks the span from read to read: every field
meter is advanced to the read's time, then the server (it runs that read then), and the check may look
(``steps`` yields). On a real server there is no such door: the bench falls back to wall time (``WallTime``),
bounded by the rig's ``timing.max_wall_wait_s``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.bench import BenchError
from harness.fault_injection.time_control import SimulatorTime, TimeControl, WallTime

MAX_IDLE_STEPS = 3  # advances of 0 s in a row that leave the server's next read where it was: a server that is stuck


class FieldTime(TimeControl):
    """A simulated AMR server (control channel) and its simulated field meters (theirs), advanced together."""

    fast = True

    def __init__(self, server: SimulatorTime, meters: dict[str, Any]) -> None:
        self.server = server
        self.meters = meters  # name -> DutRuntime of the field meter (its .time is a simulator's)
        self._reply: dict[str, Any] | None = None  # the server's last answer: its clock and its next read
        self._reply_wall = 0.0
        self._offset = 0.0  # the field's physical time minus the harness's clock (the lockstep's common time)

    def _ask(self, **req: Any) -> dict[str, Any]:
        sent = time.time()
        reply = self.server.request(**req)
        self._reply, self._reply_wall = reply, time.time()
        self._offset = float(reply["physical"]) - (sent + self._reply_wall) / 2
        return reply

    def world_offset_s(self) -> float:
        if self._reply is None:
            self._ask(op="status")
        return self._offset

    def elapse(self, seconds: float) -> None:
        for _ in self.steps(seconds, seconds):
            pass

    def steps(self, seconds: float, grain_s: float) -> Iterator[float]:
        """Walk ``seconds`` in steps of at most ``grain_s`` and never across one of the server's reads; after each
        step (the field first, then the server) the generator yields the seconds passed."""
        reply = self._reply if self._reply is not None else self._ask(op="status")
        with ThreadPoolExecutor(max_workers=len(self.meters) or 1) as pool:  # each meter is its own process
            yield from self._walk(seconds, grain_s, reply, pool)

    def _walk(self, seconds: float, grain_s: float, reply: dict[str, Any], pool: ThreadPoolExecutor,
              ) -> Iterator[float]:
        done, idle = 0.0, 0
        while True:
            due_in = float(reply["next_due"]) - (float(reply["physical"]) + time.time() - self._reply_wall)
            step = max(0.0, min(grain_s, seconds - done, due_in))
            if step <= 0 and not (reply.get("due") and due_in <= 0):
                return
            self._advance_field(step, pool)
            before = reply["next_due"]
            reply = self._ask(op="advance", seconds=step)
            done += step
            idle = idle + 1 if step == 0 and reply["next_due"] == before else 0
            if idle >= MAX_IDLE_STEPS:
                raise BenchError(f"the AMR server's control channel advanced 0 s {idle} times without running its "
                                 f"read due at {before}")
            yield done

    def _advance_field(self, seconds: float, pool: ThreadPoolExecutor) -> None:
        """Every field meter ``seconds`` on; a meter whose process is down (power cut) is skipped: it meters
        nothing while off, and its own clock is not what the server's readings are judged by."""
        self._offset += seconds
        if seconds <= 0:
            return
        for meter, future in [(m, pool.submit(m.time.elapse, seconds)) for m in self.meters.values()]:
            try:
                future.result()
            except BenchError:
                if meter.process is None or meter.process.running:
                    raise


def field_time(server: SimulatorTime, field: Any, max_wall_wait_s: float) -> TimeControl:
    """The AMR server's ``dut.time``: lockstep with its field where every field meter is a simulator with a control
    channel; otherwise (a real meter cannot be fast-forwarded) wall time for the whole bench."""
    meters = dict(field.meters)
    if all(getattr(m.time, "fast", False) for m in meters.values()):
        return FieldTime(server, meters)
    return WallTime(max_wall_wait_s)
