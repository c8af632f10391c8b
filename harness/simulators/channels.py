"""A simulated device's interfaces as the device itself sees them (profile ``interfaces``, cl. 84–85).

A Modbus slave cannot see its peer switch; what it can see is traffic. So, as meters do with
their "no communication" timeout, an interface is up while valid requests arrive on it and goes
down after ``down_after_s`` of silence (wall time: a communication timeout is real time, even
while a test fast-forwards the device clock); the next valid request brings it up again. Each
transition is logged in the journal (channel_down / channel_up, with the interface's subject)
and shown in the link-status bit field.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.config.interfaces import Interfaces
from harness.events import EventKind
from harness.simulators.journal import SimJournal


class SimChannels:
    """Up/down state of each declared interface, driven by the requests that arrive on it."""

    def __init__(self, spec: Interfaces, journal: SimJournal | None, defects: set[str],
                 rtc: Callable[[], float]) -> None:
        self.spec = spec
        self.journal = None if "channel_events_not_logged" in defects else journal
        self.defects = defects
        self.rtc = rtc  # the device clock (local seconds), for journal stamps
        now = time.monotonic()
        self.last_request = {name: now for name, _ in spec.named()}  # power-on: every interface starts up
        self.up = {name: True for name, _ in spec.named()}
        self.main_went_down = False

    def serves(self, name: str) -> bool:
        """Whether a request arriving on ``name`` is answered. Golden: always. The defects (defects.py
        CHANNEL_DEFECTS): the reserve fails while main is down; main never recovers from going down."""
        self.check()
        if name == "reserve" and "reserve_dies_with_main" in self.defects:
            return self.up["main"]
        if name == "main" and "main_stays_down" in self.defects:
            return not self.main_went_down
        return True

    def seen(self, name: str) -> None:
        """A valid request arrived on interface ``name``."""
        self.check()
        self.last_request[name] = time.monotonic()
        if not self.up[name]:
            self.up[name] = True
            self._log(EventKind.CHANNEL_UP, name, self.rtc())

    def check(self) -> None:
        """Take down every interface silent for longer than ``down_after_s``, stamped when it crossed it."""
        now = time.monotonic()
        for name, last in self.last_request.items():
            silent = now - last
            if self.up[name] and silent > self.spec.down_after_s:
                self.up[name] = False
                self.main_went_down |= name == "main"
                self._log(EventKind.CHANNEL_DOWN, name, self.rtc() - (silent - self.spec.down_after_s))

    def status_word(self) -> int:
        """The link-status bit field: each interface's status_bit set while it is up."""
        self.check()
        word = 0
        for name, interface in self.spec.named():
            if interface.status_bit is not None and (self.up[name] or "link_status_stuck" in self.defects):
                word |= 1 << interface.status_bit
        return word

    def _log(self, kind: EventKind, name: str, local: float) -> None:
        if self.journal is None:
            return
        subject = dict(self.spec.named())[name].journal_subject
        if subject is None:
            self.journal.log(kind, local)
        else:
            self.journal.log(kind, local, subject=subject)
