"""How a profile maps canonical quantities onto Modbus registers.

Everything that differs between Modbus meters — table, address, data type, word order, scale,
unit, clock encoding — is declared here, so the driver and the suites never assume one meter's
layout (DEVICES.md lists four real meters that all do it differently).
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.events import EventKind, WhenFull
from harness.quantities import UNIT_FACTORS


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterTable(StrEnum):
    HOLDING = "holding"  # FC03 read, FC06/FC16 write
    INPUT = "input"  # FC04 read only


class DataType(StrEnum):
    U16 = "u16"
    I16 = "i16"
    U32 = "u32"
    I32 = "i32"
    U64 = "u64"
    I64 = "i64"
    F32 = "f32"
    F64 = "f64"
    STRING = "string"

    @property
    def register_count(self) -> int:
        return {"u16": 1, "i16": 1, "u32": 2, "i32": 2, "u64": 4, "i64": 4, "f32": 2, "f64": 4}.get(
            self.value, 0
        )

    @property
    def is_float(self) -> bool:
        return self in (DataType.F32, DataType.F64)


class WordOrder(StrEnum):
    BIG = "big"  # high word first (Modbus convention, most meters)
    LITTLE = "little"  # low word first


class ModbusPoint(Strict):
    """One quantity at one Modbus address."""

    address: int = Field(ge=0, le=65535, description="0-based register address as sent on the wire")
    table: RegisterTable = RegisterTable.HOLDING
    type: DataType = DataType.U16
    word_order: WordOrder = WordOrder.BIG
    scale: float = Field(1.0, description="raw value x scale = value in `unit`")
    unit: str = Field("1", description="unit of raw x scale: Wh, kWh, MWh, varh, kvarh, Mvarh, W, kW, 1")
    length: int | None = Field(None, ge=1, le=64, description="registers, for type string only")
    writable: bool = Field(False, description="the device accepts writes (settings, clock)")
    test_value: float | None = Field(
        None, description="a safe value the nvm suite may write to this setting (restored afterwards)"
    )

    @model_validator(mode="after")
    def _check(self) -> ModbusPoint:
        if self.unit not in UNIT_FACTORS:
            raise ValueError(f"unit {self.unit!r} unknown; expected one of {', '.join(UNIT_FACTORS)}")
        if self.type == DataType.STRING and self.length is None:
            raise ValueError("type string needs `length` (number of registers)")
        if self.type != DataType.STRING and self.length is not None:
            raise ValueError("`length` applies to type string only")
        if self.address + self.register_count > 65536:
            raise ValueError("point runs past register 65535")
        return self

    @property
    def register_count(self) -> int:
        return self.length if self.type == DataType.STRING else self.type.register_count

    @property
    def factor(self) -> float:
        """Multiplier from a raw register value to the canonical unit."""
        return self.scale * UNIT_FACTORS[self.unit][1]

    @property
    def canonical_unit(self) -> str:
        return UNIT_FACTORS[self.unit][0]


class ClockEncoding(StrEnum):
    UNIX = "unix"  # seconds since 1970-01-01 UTC in one u32/u64 point
    YMDHMS = "ymdhms"  # six u16 registers: year, month, day, hour, minute, second (device local time)
    PACKED4 = "packed4"  # four registers, IEC 60870-5 style as Schneider iEM: yy, mm<<8|dd, hh<<8|mi, ms


class ModbusClock(Strict):
    """Where the device clock lives and how it is encoded."""

    address: int = Field(ge=0, le=65535)
    table: RegisterTable = RegisterTable.HOLDING
    encoding: ClockEncoding
    type: Literal["u32", "u64", "i64"] = Field("u32", description="for encoding unix only")
    word_order: WordOrder = WordOrder.BIG

    @property
    def register_count(self) -> int:
        if self.encoding == ClockEncoding.UNIX:
            return DataType(self.type).register_count
        return 6 if self.encoding == ClockEncoding.YMDHMS else 4


# ---- event journal (cl. 97) ---------------------------------------------------------------------
IntType = Literal["u16", "i16", "u32", "i32"]


class JournalWord(Strict):
    """A register holding a number about the journal (head slot, entry count, selector)."""

    address: int = Field(ge=0, le=65535)
    type: Literal["u16", "u32"] = "u16"
    word_order: WordOrder = WordOrder.BIG

    @property
    def register_count(self) -> int:
        return DataType(self.type).register_count


class JournalField(Strict):
    """An integer field at ``offset`` registers into one journal entry."""

    offset: int = Field(ge=0, le=124)
    type: IntType = "u16"
    word_order: WordOrder = WordOrder.BIG

    @property
    def register_count(self) -> int:
        return DataType(self.type).register_count


class JournalTime(Strict):
    """The entry's timestamp, in one of the clock encodings (unix, ymdhms, packed4)."""

    offset: int = Field(ge=0, le=124)
    encoding: ClockEncoding
    type: Literal["u32", "u64", "i64"] = Field("u32", description="for encoding unix only")
    word_order: WordOrder = WordOrder.BIG

    @property
    def clock(self) -> ModbusClock:
        """The same encoding as a clock point at the field's offset, so both codecs reuse theirs."""
        return ModbusClock(address=self.offset, encoding=self.encoding, type=self.type, word_order=self.word_order)

    @property
    def register_count(self) -> int:
        return self.clock.register_count


class JournalEntryLayout(Strict):
    """Registers of one entry: sequence number, timestamp, event code and optional detail fields."""

    size: int = Field(ge=1, le=125, description="registers per entry")
    sequence: JournalField
    timestamp: JournalTime
    code: JournalField
    details: dict[str, JournalField] = Field(default_factory=dict, description="e.g. subject, old, new")

    @model_validator(mode="after")
    def _fits(self) -> JournalEntryLayout:
        fields = [("sequence", self.sequence.offset, self.sequence.register_count),
                  ("timestamp", self.timestamp.offset, self.timestamp.register_count),
                  ("code", self.code.offset, self.code.register_count),
                  *((n, f.offset, f.register_count) for n, f in self.details.items())]
        fields.sort(key=lambda f: f[1])
        for name, off, count in fields:
            if off + count > self.size:
                raise ValueError(f"entry field {name} runs past the entry size {self.size}")
        for (n1, o1, c1), (n2, o2, _) in itertools.pairwise(fields):
            if o2 < o1 + c1:
                raise ValueError(f"entry fields {n1} and {n2} overlap")
        return self


class RingLayout(Strict):
    """(a) A ring buffer: ``capacity`` slots from ``base``; ``head`` = slot the next entry goes to."""

    type: Literal["ring"]
    head: JournalWord
    count: JournalWord
    base: int = Field(ge=0, le=65535, description="address of slot 0")


class WindowLayout(Strict):
    """(b) A selector window (ABB EQ style): write the index of the first wanted entry (0 = oldest
    held) to ``selector``, then read ``entries_per_block`` entries from ``block``."""

    type: Literal["window"]
    selector: JournalWord
    count: JournalWord
    block: int = Field(ge=0, le=65535, description="address of the first entry of the window")
    entries_per_block: int = Field(ge=1, le=125)


class ModbusJournal(Strict):
    """The device's event journal: its code table, capacity, behaviour and register layout."""

    table: RegisterTable = RegisterTable.HOLDING
    codes: dict[int, EventKind] = Field(min_length=1, description="device event code -> canonical kind")
    capacity: int = Field(ge=1, le=65535)
    when_full: WhenFull
    events_per_day: float = Field(gt=0, description="declared event rate the retention figure is judged at")
    timestamp_tolerance_s: float = Field(gt=0, description="how far an entry's time may be from the event")
    entry: JournalEntryLayout
    layout: Annotated[RingLayout | WindowLayout, Field(discriminator="type")]

    @model_validator(mode="after")
    def _check(self) -> ModbusJournal:
        if len(set(self.codes.values())) != len(self.codes):
            raise ValueError("two device codes map to the same event kind")
        if isinstance(self.layout, WindowLayout):
            if self.layout.entries_per_block * self.entry.size > 125:
                raise ValueError("a window block is more than 125 registers (one Modbus read)")
        elif self.layout.base + self.capacity * self.entry.size > 65536:
            raise ValueError("the ring buffer runs past register 65535")
        return self

    def code_of(self, kind: EventKind) -> int | None:
        """The device's code for a canonical kind, or None when the device does not log it."""
        return next((c for c, k in self.codes.items() if k == kind), None)

    def spans(self) -> list[tuple[RegisterTable, int, int, str]]:
        """(table, address, registers, name) of everything the journal occupies."""
        lay = self.layout
        if isinstance(lay, RingLayout):
            return [(self.table, lay.head.address, lay.head.register_count, "journal head"),
                    (self.table, lay.count.address, lay.count.register_count, "journal count"),
                    (self.table, lay.base, self.capacity * self.entry.size, "journal entries")]
        return [(RegisterTable.HOLDING, lay.selector.address, lay.selector.register_count, "journal selector"),
                (self.table, lay.count.address, lay.count.register_count, "journal count"),
                (self.table, lay.block, lay.entries_per_block * self.entry.size, "journal window")]


class ModbusMap(Strict):
    """The Modbus side of a profile: the PIXIT of a Modbus device."""

    points: dict[str, ModbusPoint] = Field(
        description="canonical quantity name -> register (energy, identity, active_tariff)"
    )
    clock: ModbusClock | None = None
    settings: dict[str, ModbusPoint] = Field(
        default_factory=dict, description="device settings that must survive power loss"
    )
    max_registers_per_request: int = Field(125, ge=1, le=125)
    journal: ModbusJournal | None = None

    @model_validator(mode="after")
    def _no_overlap(self) -> ModbusMap:
        spans = [(p.table, p.address, p.register_count, n) for n, p in {**self.points, **self.settings}.items()]
        if self.clock:
            spans.append((self.clock.table, self.clock.address, self.clock.register_count, "clock"))
        if self.journal:
            spans.extend(self.journal.spans())
            lay = self.journal.layout
            if isinstance(lay, WindowLayout) and lay.entries_per_block * self.journal.entry.size > \
                    self.max_registers_per_request:
                raise ValueError("the journal window is longer than max_registers_per_request")
        spans.sort()
        for (t1, a1, c1, n1), (t2, a2, _, n2) in itertools.pairwise(spans):
            if t1 == t2 and a2 < a1 + c1:
                raise ValueError(f"{n1} and {n2} overlap in the {t1.value} registers ({a1}+{c1} > {a2})")
        return self
