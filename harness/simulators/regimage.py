"""Encoding of the simulator's values into Modbus registers, from its profile.

Deliberately independent of the harness's driver codec (it uses pymodbus's own converters):
if either side got a word order or a scale wrong, the two would disagree and a test would see
it, instead of one shared bug cancelling itself out.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from pymodbus.client.mixin import ModbusClientMixin

from harness.config.modbus_map import ClockEncoding, DataType, ModbusClock, ModbusJournal, ModbusPoint

_DT = ModbusClientMixin.DATATYPE
_PYMODBUS_TYPES = {
    DataType.BOOL: _DT.UINT16,  # a coil or discrete input: 0 or 1
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


def _wrap(value: int, type_: DataType) -> int:
    """An integer as the field's width holds it (a u16 sequence number rolls over at 65536)."""
    bits = 16 * type_.register_count
    value &= (1 << bits) - 1
    if type_ in (DataType.I16, DataType.I32) and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def encode_int(type_name: str, word_order: str, value: int) -> list[int]:
    """Registers of an integer journal field or bookkeeping word (head, count, selector)."""
    type_ = DataType(type_name)
    return ModbusClientMixin.convert_to_registers(_wrap(int(value), type_), _PYMODBUS_TYPES[type_],
                                                  word_order=word_order)


def decode_int(type_name: str, word_order: str, registers: list[int]) -> int:
    raw = ModbusClientMixin.convert_from_registers(registers, _PYMODBUS_TYPES[DataType(type_name)],
                                                   word_order=word_order)
    return int(raw)  # type: ignore[arg-type]


def encode_journal_entry(journal: ModbusJournal, sequence: int, local: float, code: int,
                         details: dict[str, int], utc_offset_s: float) -> list[int]:
    """The ``entry.size`` registers of one entry; detail fields the entry lacks are left 0."""
    lay = journal.entry
    regs = [0] * lay.size

    def put(offset: int, words: list[int]) -> None:
        regs[offset:offset + len(words)] = words

    put(lay.sequence.offset, encode_int(lay.sequence.type, lay.sequence.word_order.value, sequence))
    put(lay.timestamp.offset, encode_clock(lay.timestamp.clock, local, utc_offset_s))
    put(lay.code.offset, encode_int(lay.code.type, lay.code.word_order.value, code))
    for name, f in lay.details.items():
        if name in details:
            put(f.offset, encode_int(f.type, f.word_order.value, details[name]))
    return regs
