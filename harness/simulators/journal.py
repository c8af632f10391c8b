"""The event journal every simulated Modbus device keeps (cl. 97), served in its profile's layout.

Entries live in their own fsynced NVM file, saved before the request that caused them is
answered, so a journal entry a client could have provoked is never lost to a SIGKILL — and the
large journal does not slow down the metering NVM, which is rewritten far more often. The
journal's seeded defects are implemented here, so they apply to any simulated device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config.modbus_map import ModbusJournal
from harness.events import TAMPER_INPUTS, EventKind, WhenFull
from harness.simulators.layout_image import render_store
from harness.simulators.nvstate import NvStore
from harness.simulators.regimage import encode_journal_entry

JOURNAL_DEFECTS = ("journal_volatile", "journal_missing_power_events", "journal_sequence_gap",
                   "journal_stops_when_full", "journal_time_skew", "journal_capacity_short", "journal_unreadable")
GAP_EVERY = 5  # journal_sequence_gap: a number is skipped after every 5th entry
SKEW_S = -3600.0  # journal_time_skew: entries stamped an hour behind the clock
SHORT_FACTOR = 4  # journal_capacity_short: only a quarter of the declared capacity is really kept


class JournalStore(NvStore):
    """The journal's own NVM file, next to the device's."""

    FILE = "journal.json"


@dataclass
class _Entry:
    seq: int
    t: float  # device local seconds
    kind: str
    details: dict[str, int]


class SimJournal:
    """Entries, sequence counter, ring head and window selector of one simulated device."""

    def __init__(self, spec: ModbusJournal, state_dir: Path, defects: set[str], utc_offset_s: float) -> None:
        self.spec = spec
        self.defects = defects
        self.utc_offset_s = utc_offset_s
        self.store = JournalStore(state_dir)
        self.keep = spec.capacity // SHORT_FACTOR if "journal_capacity_short" in defects else spec.capacity
        self.keep = max(1, self.keep)
        self.selector = 0
        self.tamper: dict[str, bool] = dict.fromkeys(TAMPER_INPUTS, False)
        state = None if "journal_volatile" in defects else self.store.load()
        self.entries = [_Entry(**e) for e in state["entries"]] if state else []
        self.next_seq: int = state["next_seq"] if state else 1
        self.head: int = state["head"] if state else 0
        # entries ever written (a ring that keeps only this counter shows it; older NVM files lack it)
        self.written: int = state.get("written", len(self.entries)) if state else 0
        # (wall time, device local time) of the last entry: the device was alive then, perhaps after its last
        # NVM save — a power-down must not be stamped before an event the device logged.
        self.alive: tuple[float, float] | None = tuple(state["alive"]) if state and state.get("alive") else None
        self._logged = 0

    @classmethod
    def power_on(cls, spec: ModbusJournal, state_dir: Path, defects: set[str], utc_offset_s: float,
                 device_state: dict[str, Any] | None, rtc_now: float) -> SimJournal:
        """Open the journal and log the power cycle. The power-down is stamped, as real meters do, with
        the last moment the device is known to have run: its last NVM save (``rtc_at_save``), or its last
        journal entry if that came later."""
        journal = cls(spec, state_dir, defects, utc_offset_s)
        if device_state is not None:
            timeline = device_state["timeline"]
            last_alive = device_state.get("rtc_at_save", timeline["phys"] + timeline["rtc_offset"])
            if journal.alive is not None and journal.alive[0] > device_state.get("wall_at_save", 0.0):
                last_alive = journal.alive[1]
            journal.log(EventKind.POWER_DOWN, float(last_alive))
        journal.log(EventKind.POWER_UP, rtc_now)
        return journal

    # ---- recording ------------------------------------------------------------------------------
    def log(self, kind: EventKind, local: float, **details: int) -> None:
        """Record an event (if the device's code table has it) and persist it before returning."""
        if self.spec.code_of(kind) is None:
            return  # this device's firmware does not log the kind
        if "journal_missing_power_events" in self.defects and kind in (EventKind.POWER_DOWN, EventKind.POWER_UP):
            return
        if len(self.entries) >= self.keep:
            stops = self.spec.when_full == WhenFull.STOP or "journal_stops_when_full" in self.defects
            if stops:
                return
            self.entries.pop(0)
        if "journal_time_skew" in self.defects:
            local += SKEW_S
        self.entries.append(_Entry(self.next_seq, local, kind.value, {k: int(v) for k, v in details.items()}))
        self._logged += 1
        self.next_seq += 2 if "journal_sequence_gap" in self.defects and self._logged % GAP_EVERY == 0 else 1
        self.head = (self.head + 1) % self.spec.capacity
        self.written += 1
        self.alive = (time.time(), local)
        self.save()

    def set_tamper(self, name: str, active: bool, local: float) -> None:
        """A tamper input changed (control channel): log the edge, not the level."""
        if name not in TAMPER_INPUTS:
            raise ValueError(f"unknown tamper input {name!r}; inputs: {', '.join(TAMPER_INPUTS)}")
        if self.tamper[name] == active:
            return
        self.tamper[name] = active
        on, off = TAMPER_INPUTS[name]
        kind = on if active else off
        if kind is not None and "tamper_not_logged" not in self.defects:
            self.log(kind, local)

    def save(self) -> None:
        if "journal_volatile" in self.defects:
            return
        self.store.save({"entries": [e.__dict__ for e in self.entries], "next_seq": self.next_seq,
                         "head": self.head, "written": self.written, "alive": self.alive})

    # ---- serving --------------------------------------------------------------------------------
    def _encode(self, entry: _Entry) -> list[int]:
        code = self.spec.code_of(EventKind(entry.kind))
        assert code is not None
        return encode_journal_entry(self.spec, entry.seq, entry.t, code, entry.details, self.utc_offset_s)

    def render(self, name: str) -> list[int]:
        """Registers of one journal span: ``head``, ``count``, ``selector``, ``slot:<i>``, ``window``."""
        return render_store(self.spec, name, len(self.entries), self.head, self.selector,
                            lambda k: self._encode(self.entries[k]), self.written)

    def status(self) -> dict[str, Any]:
        return {"entries": len(self.entries), "next_seq": self.next_seq, "tamper": dict(self.tamper)}
