"""How a profile maps canonical quantities onto Modbus registers.

Everything that differs between Modbus meters — table, address, data type, word order, scale,
unit, clock encoding, how stored records are laid out — is declared here, so the driver and the
suites never assume one meter's layout (DEVICES.md lists four real meters that all do it
differently). The register-level models live in ``modbus_types.py``, the record layouts the event
journal and the load profile share in ``record_layout.py``, the load profile in ``load_profile.py``;
they are re-exported here, where the rest of the harness has always found them.
"""

from __future__ import annotations

import itertools

from pydantic import Field, model_validator

from harness.config.load_profile import EnergyField, IntervalEntryLayout, ModbusLoadProfile
from harness.config.modbus_server import ModbusServerTraits
from harness.config.modbus_types import (
    ClockEncoding,
    DataType,
    ModbusClock,
    ModbusPoint,
    RegisterTable,
    Strict,
    WordOrder,
)
from harness.config.point_names import PointName
from harness.config.record_layout import (
    IntField,
    IntType,
    LayoutWord,
    RecordStore,
    RingLayout,
    TimeField,
    WindowLayout,
    check_entry_fields,
)
from harness.config.write_protection import UnlockRegister, WriteProtection
from harness.events import EventKind, WhenFull

__all__ = ["ClockEncoding", "DataType", "EnergyField", "IntField", "IntType", "IntervalEntryLayout",
           "JournalEntryLayout", "JournalField", "JournalTime", "JournalWord", "LayoutWord", "ModbusClock",
           "ModbusJournal", "ModbusLoadProfile", "ModbusMap", "ModbusPoint", "RecordStore", "RegisterTable",
           "RingLayout", "Strict", "TimeField", "UnlockRegister", "WindowLayout", "WordOrder", "WriteProtection"]

# ---- event journal (cl. 97) ---------------------------------------------------------------------
# The journal's names for the shared layout pieces (older code and profiles' schema know them so).
JournalWord = LayoutWord
JournalField = IntField
JournalTime = TimeField


class JournalEntryLayout(Strict):
    """Registers of one entry: sequence number, timestamp, event code and optional detail fields."""

    size: int = Field(ge=1, le=125, description="registers per entry")
    sequence: JournalField
    timestamp: JournalTime
    code: JournalField
    details: dict[str, JournalField] = Field(default_factory=dict, description="e.g. subject, old, new")

    @model_validator(mode="after")
    def _fits(self) -> JournalEntryLayout:
        check_entry_fields(self.size, [("sequence", self.sequence.offset, self.sequence.register_count),
                                       ("timestamp", self.timestamp.offset, self.timestamp.register_count),
                                       ("code", self.code.offset, self.code.register_count),
                                       *((n, f.offset, f.register_count) for n, f in self.details.items())])
        return self


class ModbusJournal(RecordStore):
    """The device's event journal: its code table, capacity, behaviour and register layout."""

    codes: dict[int, EventKind] = Field(min_length=1, description="device event code -> canonical kind")
    when_full: WhenFull
    events_per_day: float = Field(gt=0, le=1440, description="declared event rate the retention figure is judged at "
                                  "(at most one a minute: KZ-97-06 provokes a year of them)")
    timestamp_tolerance_s: float = Field(gt=0, description="how far an entry's time may be from the event (may "
                                         "tighten, never loosen, the bound of conformance/bounds.py: 5 s)")
    entry: JournalEntryLayout

    @model_validator(mode="after")
    def _check(self) -> ModbusJournal:
        if len(set(self.codes.values())) != len(self.codes):
            raise ValueError("two device codes map to the same event kind")
        self.check_fits()
        return self

    @property
    def entry_size(self) -> int:
        return self.entry.size

    def code_of(self, kind: EventKind) -> int | None:
        """The device's code for a canonical kind, or None when the device does not log it."""
        return next((c for c, k in self.codes.items() if k == kind), None)

    @property
    def sequence_modulo(self) -> int:
        """Where the entry number rolls over (a u16 after 65535)."""
        return 1 << (16 * (1 if self.entry.sequence.type in ("u16", "i16") else 2))


class ModbusMap(ModbusServerTraits):
    """The Modbus side of a profile: the PIXIT of a Modbus device (server traits: ``modbus_server.py``)."""

    points: dict[PointName, ModbusPoint] = Field(
        description="canonical quantity name -> register (energy, identity, active_tariff, heat quantities); "
        "a vendor's own point under the `x_` prefix"
    )
    clock: ModbusClock | None = None
    settings: dict[str, ModbusPoint] = Field(
        default_factory=dict, description="device settings that must survive power loss"
    )
    max_registers_per_request: int = Field(125, ge=1, le=125)
    journal: ModbusJournal | None = None
    load_profile: ModbusLoadProfile | None = Field(
        None, description="interval data (cl. 31): one record per capture period, in a ring or window layout")
    write_protection: WriteProtection | None = Field(
        None, description="how the meter guards its clock and settings: unlock register, session, what it protects "
        "(cl. 66, 78, 94); the password is the rig's credentials.unlock")

    def stores(self) -> dict[str, RecordStore]:
        """The record stores the profile declares, by the name errors and reports use."""
        found = {"journal": self.journal, "load profile": self.load_profile}
        return {name: store for name, store in found.items() if store is not None}

    def spans(self) -> list[tuple[RegisterTable, int, int, str]]:
        """Every run of registers the profile declares: (table, address, registers, what it is)."""
        spans = [(p.table, p.address, p.register_count, n) for n, p in {**self.points, **self.settings}.items()]
        if self.clock:
            spans.append((self.clock.table, self.clock.address, self.clock.register_count, "clock"))
        if self.write_protection:
            unlock = self.write_protection.unlock
            spans.append((RegisterTable.HOLDING, unlock.address, unlock.register_count, "unlock"))
        for name, store in self.stores().items():
            spans.extend(store.spans(name))
        return sorted(spans)

    @model_validator(mode="after")
    def _no_overlap(self) -> ModbusMap:
        for name, store in self.stores().items():
            if store.block_registers() > self.max_registers_per_request:
                raise ValueError(f"the {name} window is longer than max_registers_per_request")
        if self.write_protection and self.write_protection.guards("clock") and self.clock is None:
            raise ValueError("write_protection protects the clock, but no `clock` register is declared")
        if self.write_protection and self.write_protection.guards("settings") and not self.settings:
            raise ValueError("write_protection protects settings, but no `settings` are declared")
        spans = self.spans()
        for (t1, a1, c1, n1), (t2, a2, _, n2) in itertools.pairwise(spans):
            if t1 == t2 and a2 < a1 + c1:
                raise ValueError(f"{n1} and {n2} overlap in the {t1.value} registers ({a1}+{c1} > {a2})")
        return self
