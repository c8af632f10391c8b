"""How a profile declares a meter's load profile (interval data, cl. 31): capture period, capacity,
the register layout of the records and what each record holds.

The layout (ring or selector window) and the integer / timestamp fields are the journal's
(``record_layout.py``); a load-profile entry adds the energy increments of the four channels with
their own type, scale and unit, and a status word whose bits the profile maps to canonical flags,
because every vendor numbers them differently.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from harness.config.modbus_types import DataType, Strict
from harness.config.record_layout import IntField, RecordStore, TimeField, check_entry_fields
from harness.intervals import IntervalFlag
from harness.quantities import UNIT_FACTORS, EnergyChannel

CHANNEL_FIELDS = tuple(c.value for c in EnergyChannel)  # active_import, active_export, reactive_*


class EnergyField(IntField):
    """An energy increment: raw integer × ``scale`` = energy in ``unit`` (Wh, kWh, varh, kvarh …)."""

    scale: float = Field(1.0, gt=0, description="raw value x scale = energy in `unit`")
    unit: str = Field("Wh", description="Wh, kWh, MWh for active channels; varh, kvarh, Mvarh for reactive")

    @property
    def factor(self) -> float:
        """Multiplier from the raw field to Wh or varh."""
        return self.scale * UNIT_FACTORS[self.unit][1]


class IntervalEntryLayout(Strict):
    """Registers of one record: end time, energy increments, status, optional sequence number."""

    size: int = Field(ge=1, le=125, description="registers per record")
    sequence: IntField | None = Field(None, description="record number, when the device keeps one")
    end_time: TimeField
    active_import: EnergyField | None = None
    active_export: EnergyField | None = None
    reactive_import: EnergyField | None = None
    reactive_export: EnergyField | None = None
    status: IntField

    @model_validator(mode="after")
    def _check(self) -> IntervalEntryLayout:
        channels = self.channels()
        if not channels:
            raise ValueError(f"a record needs at least one energy increment ({', '.join(CHANNEL_FIELDS)})")
        for channel, f in channels.items():
            unit = UNIT_FACTORS.get(f.unit, ("?", 0.0))[0]
            if unit != channel.unit:
                raise ValueError(f"{channel.value}: unit {f.unit!r} is not an energy unit in {channel.unit}")
        if self.status.type not in ("u16", "u32"):
            raise ValueError("status is a bit field: type u16 or u32")
        fields = [("end_time", self.end_time.offset, self.end_time.register_count),
                  ("status", self.status.offset, self.status.register_count),
                  *((c.value, f.offset, f.register_count) for c, f in channels.items())]
        if self.sequence is not None:
            fields.append(("sequence", self.sequence.offset, self.sequence.register_count))
        check_entry_fields(self.size, fields)
        return self

    def channels(self) -> dict[EnergyChannel, EnergyField]:
        """The increments this record holds, by channel, in the canonical channel order."""
        return {c: f for c in EnergyChannel if (f := getattr(self, c.value)) is not None}


class ModbusLoadProfile(RecordStore):
    """The device's load profile: capture period, capacity, status bits and register layout."""

    capture_period_s: int = Field(900, ge=1, le=86400, description="seconds per record; cl. 31 asks for ≤ 900")
    status_bits: dict[IntervalFlag, int] = Field(
        description="bit number (0 = least significant) of each flag in the status word, e.g. "
                    "{power_failed: 0, clock_changed: 1, invalid: 2}")
    entry: IntervalEntryLayout

    @model_validator(mode="after")
    def _check(self) -> ModbusLoadProfile:
        if 86400 % self.capture_period_s:
            raise ValueError(f"capture_period_s {self.capture_period_s} does not divide a day into whole periods")
        width = 16 * DataType(self.entry.status.type).register_count
        for flag, bit in self.status_bits.items():
            if not 0 <= bit < width:
                raise ValueError(f"status bit {bit} of {flag.value} is outside the {width}-bit status word")
        if len(set(self.status_bits.values())) != len(self.status_bits):
            raise ValueError("two flags share one status bit")
        missing = [f.value for f in IntervalFlag if f not in self.status_bits]
        if missing:
            raise ValueError(f"status_bits must map every flag; missing {', '.join(missing)}")
        self.check_fits()
        return self

    @property
    def entry_size(self) -> int:
        return self.entry.size

    @property
    def sequence_modulo(self) -> int | None:
        """Where the record number rolls over, or None when the records carry none."""
        return None if self.entry.sequence is None else 1 << (16 * self.entry.sequence.register_count)

    def record_steps(self) -> dict[EnergyChannel, float]:
        """The smallest step of each channel's increment, Wh / varh."""
        return {ch: f.factor for ch, f in self.entry.channels().items()}
