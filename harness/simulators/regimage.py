"""Encoding of the simulator's values into Modbus registers, from its profile.

Deliberately independent of the harness's driver codec (it uses pymodbus's own converters):
if either side got a word order or a scale wrong, the two would disagree and a test would see
it, instead of one shared bug cancelling itself out.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from pymodbus.client.mixin import ModbusClientMixin

from harness.config.modbus_map import ClockEncoding, DataType, ModbusClock, ModbusPoint

_DT = ModbusClientMixin.DATATYPE
_PYMODBUS_TYPES = {
    DataType.U16: _DT.UINT16, DataType.I16: _DT.INT16, DataType.U32: _DT.UINT32, DataType.I32: _DT.INT32,
    DataType.U64: _DT.UINT64, DataType.I64: _DT.INT64, DataType.F32: _DT.FLOAT32, DataType.F64: _DT.FLOAT64,
}


def encode_point(point: ModbusPoint, value: float | int | str) -> list[int]:
    """Registers for ``value`` given in the point's canonical unit (Wh, varh, …) or as text."""
    if point.type == DataType.STRING:
        raw = str(value).encode("ascii")[: point.length * 2].ljust(point.length * 2, b"\0")
        return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    scaled = value / point.factor if not isinstance(value, str) else 0
    if not point.type.is_float:
        scaled = round(scaled)
    return ModbusClientMixin.convert_to_registers(scaled, _PYMODBUS_TYPES[point.type],
                                                  word_order=point.word_order.value)


def decode_point(point: ModbusPoint, registers: list[int]) -> float:
    """Value in canonical units from a write to a point."""
    raw = ModbusClientMixin.convert_from_registers(registers, _PYMODBUS_TYPES[point.type],
                                                   word_order=point.word_order.value)
    return float(raw) * point.factor  # type: ignore[arg-type]


def encode_clock(clock: ModbusClock, local: float, utc_offset_s: float) -> list[int]:
    """Registers for device local time ``local`` (seconds since 1970-01-01 local)."""
    if clock.encoding == ClockEncoding.UNIX:
        utc = int(local - utc_offset_s)
        return ModbusClientMixin.convert_to_registers(utc, _PYMODBUS_TYPES[DataType(clock.type)],
                                                      word_order=clock.word_order.value)
    dt = datetime.fromtimestamp(local, UTC)
    if clock.encoding == ClockEncoding.YMDHMS:
        return [dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second]
    ms = dt.second * 1000 + dt.microsecond // 1000
    return [dt.year - 2000, (dt.month << 8) | dt.day, (dt.hour << 8) | dt.minute, ms]


def decode_clock(clock: ModbusClock, regs: list[int], utc_offset_s: float) -> float:
    """Device local seconds from written registers; ValueError for an impossible date."""
    if clock.encoding == ClockEncoding.UNIX:
        utc = ModbusClientMixin.convert_from_registers(regs, _PYMODBUS_TYPES[DataType(clock.type)],
                                                       word_order=clock.word_order.value)
        return float(utc) + utc_offset_s  # type: ignore[arg-type]
    if clock.encoding == ClockEncoding.YMDHMS:
        y, mo, d, h, mi, s = regs
        ms = 0
    else:
        y, md, hm, ms_total = regs
        y, mo, d, h, mi = y + 2000, md >> 8, md & 0xFF, hm >> 8, hm & 0xFF
        s, ms = divmod(ms_total, 1000)
    dt = datetime(y, mo, d, h, mi, s, ms * 1000, tzinfo=UTC)  # raises ValueError when impossible
    return calendar.timegm(dt.timetuple()) + ms / 1000.0
