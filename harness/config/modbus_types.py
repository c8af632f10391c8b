"""The register-level vocabulary of a Modbus profile: tables, data types, word order, points and
clock encodings.

Everything that differs between Modbus meters at the level of one value — table, address, data
type, word order, scale, unit, clock encoding — is declared with these models, so the driver and
the suites never assume one meter's layout (DEVICES.md lists four real meters that all do it
differently). Record stores built from them (journal, load profile) live in ``record_layout.py``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.quantities import UNIT_FACTORS


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, so typos never pass silently; no float field
    of any profile or rig takes inf or NaN (``.inf`` would make a window endless, NaN every comparison
    false), whichever model declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RegisterTable(StrEnum):
    HOLDING = "holding"  # FC03 read, FC06/FC16 write
    INPUT = "input"  # FC04 read only
    COIL = "coil"  # FC01 read, FC05/FC15 write: one bit per address
    DISCRETE_INPUT = "discrete_input"  # FC02 read only: one bit per address

    @property
    def is_bit(self) -> bool:
        return self in (RegisterTable.COIL, RegisterTable.DISCRETE_INPUT)

    @property
    def read_function(self) -> int:
        return {"holding": 3, "input": 4, "coil": 1, "discrete_input": 2}[self.value]

    @property
    def writable(self) -> bool:
        return self in (RegisterTable.HOLDING, RegisterTable.COIL)


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
    BOOL = "bool"  # one coil or discrete input: 0 or 1

    @property
    def register_count(self) -> int:
        return {"bool": 1, "u16": 1, "i16": 1, "u32": 2, "i32": 2, "u64": 4, "i64": 4, "f32": 2, "f64": 4}.get(
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
    resolution: float | None = Field(
        None, gt=0, description="the device's counting step in `unit`, when coarser than the encoding shows "
        "(a float register fed by a 1 Wh pulse counter changes in 1 Wh steps, not in float ulps)")
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
        if self.table.is_bit != (self.type == DataType.BOOL):
            raise ValueError(f"table {self.table.value} holds " + ("bits: type bool" if self.table.is_bit else
                             "registers: type bool belongs to table coil or discrete_input"))
        if self.writable and not self.table.writable:
            raise ValueError(f"table {self.table.value} is read-only: a writable point is a holding register or a coil")
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
