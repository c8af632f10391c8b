"""A DLMS profile's class 7 Profile generic objects: the event logs (the journal, cl. 97) and the load profile
(interval data, cl. 31) of a meter, as its ``dlms.journal`` and ``dlms.load_profile`` declare them.

What the profile says is where the objects are and what their values mean — the event code tables (SPODES keeps
one log per category, IDIS one standard log; a code is only meaningful within its log), the status word's bits,
which register each energy column captures and whether it holds increments or totals. Which column holds what
is *not* declared: the driver reads each object's capture_objects (attribute 3) and finds its columns there,
as a client of a real meter must. ``columns`` is the order the meter keeps (what the simulated meter serves).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from harness.config.modbus_types import Strict
from harness.events import EventKind, WhenFull
from harness.intervals import IntervalFlag
from harness.quantities import UNIT_FACTORS, EnergyChannel

CODE_TYPES = {"unsigned": 8, "long_unsigned": 16, "double_long_unsigned": 32}  # A-XDR type -> bits
CLASS_PROFILE_GENERIC = 7


_OBIS = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")


def check_obis(v: str) -> str:
    """An OBIS code A.B.C.D.E.F, each 0..255, or ValueError."""
    m = _OBIS.match(v)
    if not m or any(int(g) > 255 for g in m.groups()):
        raise ValueError(f"{v!r} is not an OBIS code A.B.C.D.E.F (each 0..255)")
    return v


Obis = Annotated[str, AfterValidator(check_obis)]


class EventLog(Strict):
    """One event log: a Profile generic whose entries are (date-time, event code, entry number) in some order."""

    obis: Obis = Field(description="the Profile generic's logical name, e.g. 0.0.99.98.2.255")
    event_code: Obis = Field(description="the Data object (class 1) whose value the log captures, e.g. 0.0.96.11.2.255")
    code_type: str = Field("unsigned", description="A-XDR type of the event code: unsigned, long_unsigned")
    codes: dict[int, EventKind] = Field(min_length=1, description="this log's event code -> canonical kind")


    @model_validator(mode="after")
    def _check(self) -> EventLog:
        if self.code_type not in CODE_TYPES:
            raise ValueError(f"code_type {self.code_type!r}: one of {', '.join(CODE_TYPES)}")
        too_big = [c for c in self.codes if not 0 <= c < 1 << CODE_TYPES[self.code_type]]
        if too_big:
            raise ValueError(f"event code {too_big[0]} does not fit a {self.code_type}")
        if len(set(self.codes.values())) != len(self.codes):
            raise ValueError("two codes of the log map to the same event kind")
        return self


class JournalColumn(StrEnum):
    CLOCK = "clock"
    CODE = "code"
    SEQUENCE = "sequence"


class DlmsJournal(Strict):
    """The meter's event logs, judged as one journal: capacity and behaviour are of all its logs together."""

    logs: dict[str, EventLog] = Field(min_length=1, description="log name -> event log (SPODES: one per category)")
    sequence: Obis = Field(description="the Data object whose value (the entry number, counted over all the logs) "
                          "each log captures")
    sequence_type: str = Field("double_long_unsigned", description="its A-XDR type: long_unsigned, "
                               "double_long_unsigned")
    columns: list[JournalColumn] = Field(default_factory=lambda: list(JournalColumn),
                                         description="the order of the capture objects the meter keeps")
    capacity: int = Field(ge=1, description="entries held over all the logs")
    when_full: WhenFull
    events_per_day: float = Field(gt=0, le=1440, description="declared event rate the retention figure is judged at")
    timestamp_tolerance_s: float = Field(gt=0, description="how far an entry's time may be from the event")


    @model_validator(mode="after")
    def _check(self) -> DlmsJournal:
        if self.sequence_type not in ("long_unsigned", "double_long_unsigned"):
            raise ValueError("sequence_type: long_unsigned or double_long_unsigned")
        if sorted(self.columns) != sorted(JournalColumn):
            raise ValueError("columns: clock, code and sequence, each once, in the meter's order")
        kinds = [k for log in self.logs.values() for k in log.codes.values()]
        if len(set(kinds)) != len(kinds):
            raise ValueError("an event kind is in two logs' code tables")
        obis = [log.obis for log in self.logs.values()]
        if len(set(obis)) != len(obis):
            raise ValueError("two logs share a logical name")
        return self

    @property
    def codes(self) -> dict[tuple[str, int], EventKind]:
        """(log, code) -> kind over all logs (a code means something only within its log)."""
        return {(name, c): k for name, log in self.logs.items() for c, k in log.codes.items()}

    def code_of(self, kind: EventKind) -> int | None:
        return next((c for (_, c), k in self.codes.items() if k == kind), None)

    def log_of(self, kind: EventKind) -> str | None:
        return next((n for (n, _), k in self.codes.items() if k == kind), None)

    @property
    def sequence_modulo(self) -> int:
        return 1 << (16 if self.sequence_type == "long_unsigned" else 32)


class EnergyColumn(Strict):
    """An energy register (class 3) the load profile captures: where it is, the scaler_unit it reports."""

    obis: Obis
    unit: str = Field(description="Wh for active, varh for reactive channels")
    scaler: int = Field(0, ge=-9, le=9)
    type: str = Field("double_long_unsigned", description="the A-XDR type of its value: an unsigned integer type")

    @model_validator(mode="after")
    def _check(self) -> EnergyColumn:
        if self.type not in ("unsigned", "long_unsigned", "double_long_unsigned", "long64_unsigned"):
            raise ValueError(f"type {self.type!r}: unsigned, long_unsigned, double_long_unsigned or long64_unsigned")
        return self


    @property
    def step(self) -> float:
        """One count of the register in Wh / varh."""
        return 10.0 ** self.scaler * UNIT_FACTORS[self.unit][1]


class CapturedValues(StrEnum):
    INCREMENTS = "increments"  # energy over the capture period (SPODES 1.0.1.29.0.255 …)
    TOTALS = "totals"  # the totals at each period's end (IDIS 1.0.1.8.0.255 …): increments are differences


class DlmsLoadProfile(Strict):
    """The load profile (1.0.99.1.0.255): date-time, status word and energy columns, one entry per period."""

    obis: Obis = "1.0.99.1.0.255"
    capture_period_s: int = Field(900, ge=1, le=86400, description="seconds per entry; cl. 31 asks for <= 900")
    capacity: int = Field(ge=1, description="entries held")
    status: Obis = Field("0.0.96.10.1.255", description="the Data object of the status word it captures")
    status_type: str = Field("unsigned", description="the status word's A-XDR type: unsigned, long_unsigned")
    status_bits: dict[IntervalFlag, int] = Field(description="bit number (0 = least significant) of each flag")
    values: CapturedValues = Field(description="what the energy columns hold: increments, or totals (the driver "
                                   "takes differences of consecutive entries; the oldest entry then has none)")
    channels: dict[EnergyChannel, EnergyColumn] = Field(min_length=1)
    columns: list[str] = Field(default_factory=list, description="the order of the capture objects the meter keeps: "
                               "clock, status and the channel names (default: that order)")


    @model_validator(mode="after")
    def _check(self) -> DlmsLoadProfile:
        if 86400 % self.capture_period_s:
            raise ValueError(f"capture_period_s {self.capture_period_s} does not divide a day")
        if self.status_type not in ("unsigned", "long_unsigned"):
            raise ValueError("status_type: unsigned or long_unsigned")
        width = CODE_TYPES[self.status_type]
        bad = [f.value for f, b in self.status_bits.items() if not 0 <= b < width]
        if bad:
            raise ValueError(f"status_bits: {bad[0]} is no bit of a {width}-bit status word")
        if len(set(self.status_bits.values())) != len(self.status_bits):
            raise ValueError("status_bits: two flags share a bit")
        for ch, col in self.channels.items():
            if UNIT_FACTORS.get(col.unit, ("?", 0.0))[0] != ch.unit or col.unit not in ("Wh", "varh"):
                raise ValueError(f"channels.{ch.value}: unit {col.unit!r}; its register counts {ch.unit}")
        wanted = ["clock", "status", *(c.value for c in self.channels)]
        if self.columns and sorted(self.columns) != sorted(wanted):
            raise ValueError(f"columns: {', '.join(wanted)}, each once, in the meter's order")
        return self

    @property
    def column_order(self) -> list[str]:
        return self.columns or ["clock", "status", *(c.value for c in self.channels)]

    @property
    def sequence_modulo(self) -> int | None:
        return None  # a DLMS load profile keeps no record number (its end times identify the entries)

    def record_steps(self) -> dict[EnergyChannel, float]:
        """The smallest step of each channel's increment, Wh / varh."""
        return {ch: col.step for ch, col in self.channels.items()}
