"""Bounded robustness campaigns on a serial line (Modbus RTU): fuzz cases and a request storm, written
straight to the harness's end of the line (the rig's serial port).

A line carries one exchange at a time, and the Device API's driver shares it: the essential function cannot
be read *while* a frame is on the line, so it is read *between* frames — every ``monitor_interval_s``, after
the line has been drained — by the ``Monitor``'s ``take()``. Frames are separated as RTU separates them: by
silence, t3.5 of the line's baud rate after an answered exchange, and the longer ``silence_s`` (the harness's
end-of-reply silence) after one that left the line in doubt (no reply, or half of one), so that a device
that drops incomplete frames on silence has seen it. Bounded like the TCP campaigns (``Campaign``): count
(arguments), rate (``Pacer``) and time (``max_duration_s``); the conversation is kept for the reproducer,
each fuzz case as a "connection" of its own so that the suspects of a failure can be picked out.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from harness.conformance.wire.campaign import MISSES_BEFORE_GIVING_UP, CaseOutcome, Flood, Pacer, Valid
from harness.conformance.wire.modbus_fuzz import Case
from harness.conformance.wire.modbus_raw import open_line, read_rtu_reply, rtu_reply_length, silence_s
from harness.conformance.wire.reproducer import Conversation

LINE = 0  # the conversation's "connection" number of exchanges that belong to no fuzz case


class SerialCampaign:
    """One campaign on the DUT's serial line; ``settings`` is the rig's ``robustness``; ``monitor`` is read
    between frames (not threaded)."""

    def __init__(self, runtime: Any, settings: Any, monitor: Any, record: Callable[..., None] | None = None,
                 length: Callable[[bytes], int | None] = rtu_reply_length) -> None:
        self.settings, self.monitor, self.record = settings, monitor, record
        self.length = length  # a reply's length from its first bytes (RTU; HDLC: its format field)
        self.port_name = str(runtime.endpoint["serial_port"])
        self.baudrate = runtime.spec.transport.serial.baudrate
        self.gap_s = 3.5 * 11 / self.baudrate  # t3.5 at the line's baud rate
        self.silence_s = silence_s(self.baudrate)
        self.conversation = Conversation(self.port_name, 0)
        self.started = time.perf_counter()
        self.deadline = self.started + settings.max_duration_s
        self.pacer = Pacer(settings.rate_per_s, self.deadline)
        self._port = open_line(runtime)
        self._quiet_from = 0.0  # perf_counter from which the line may carry the next frame
        self._last_sample = time.perf_counter()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._port.close()

    # ---- one exchange -----------------------------------------------------------------------------------
    def exchange(self, conn: int, frame: bytes, wait_s: float) -> bytes | None:
        """``frame`` on the line after the silence the last exchange calls for, and the reply (None: none)."""
        time.sleep(max(0.0, self._quiet_from - time.perf_counter()))
        self._port.reset_input_buffer()
        self.conversation.add(conn, "send", frame)
        t0 = time.perf_counter()
        self._port.write(frame)
        self._port.flush()
        reply = read_rtu_reply(self._port, t0 + wait_s, self.baudrate, self.length) or None
        if reply:
            self.conversation.add(conn, "reply", reply)
        self._settle(complete=reply is not None and _complete(reply, self.length))
        return reply

    def _settle(self, complete: bool) -> None:
        self._quiet_from = time.perf_counter() + (self.gap_s if complete else self.silence_s)

    def between(self, force: bool = False) -> None:
        """The essential function read on the Device API when ``monitor_interval_s`` has passed (the line
        drained first, so that nothing late is taken for the driver's answer)."""
        now = time.perf_counter()
        if not force and now - self._last_sample < self.settings.monitor_interval_s:
            return
        time.sleep(max(0.0, self._quiet_from - now))
        self._port.reset_input_buffer()
        self.monitor.take()
        self._last_sample = time.perf_counter()
        self._settle(complete=False)

    # ---- campaigns ----------------------------------------------------------------------------------------
    def fuzz(self, cases: list[Case], stop: Callable[[], bool], connect_timeout_s: float) -> list[CaseOutcome]:
        """Each case on the line, its answer awaited for ``case_timeout_s``; the essential function read
        between cases. Stops when it is gone. (``connect_timeout_s``: no connections on a line.)"""
        outcomes: list[CaseOutcome] = []
        self.start_clock()  # building the cases (scapy) took none of the device's time
        for case in cases:
            self.between()
            if stop() or not self.pacer.wait():
                break
            t_sent = time.time()
            reply = self.exchange(case.index + 1, case.frame, self.settings.case_timeout_s)
            outcomes.append(CaseOutcome(case, case.index + 1, t_sent, reply, False))
            if self.record is not None:
                self.record(op="fuzz", case=case.index, family=case.family, what=case.what, sent=case.frame.hex(),
                            received=reply.hex() if reply else None, closed=False)
        if not stop():
            self.between(force=True)  # the cases sent last are judged too
        return outcomes

    def flood(self, frame: Callable[[int], bytes], valid: Valid, count: int, connections: int, wait_s: float,
              stop: Callable[[], bool]) -> Flood:
        """``count`` valid requests back to back at the line's rate (each answer awaited: one line, one
        exchange at a time — ``connections`` has no meaning here), the essential function read between them."""
        result = Flood()
        misses = 0
        t0 = time.perf_counter()
        for n in range(count):
            self.between()
            if stop() or not self.pacer.wait():
                break
            sent = time.perf_counter()
            reply = self.exchange(LINE, frame(n), wait_s)
            result.sent += 1
            if valid(reply):
                result.answered += 1
                result.latencies_s.append(time.perf_counter() - sent)
                misses = 0
            else:
                misses += 1
                if misses >= MISSES_BEFORE_GIVING_UP:
                    result.gave_up = 1
                    break
        if not stop():
            self.between(force=True)
        result.elapsed_s = time.perf_counter() - t0
        return result

    def fresh_connections_served(self, probe: bytes, valid: Valid, tries: int, wait_s: float) -> int:
        """After an attack: how many of ``tries`` valid requests, one after the other, are answered (the line's
        counterpart of new connections being served)."""
        return sum(bool(valid(self.exchange(LINE, probe, wait_s))) for _ in range(tries))

    def start_clock(self) -> None:
        """The time bound (``max_duration_s``) counts from now."""
        self.started = time.perf_counter()
        self.deadline = self.started + self.settings.max_duration_s
        self.pacer = Pacer(self.settings.rate_per_s, self.deadline)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


def _complete(reply: bytes, length: Callable[[bytes], int | None]) -> bool:
    expected = length(reply)
    return expected is not None and len(reply) >= expected
