"""Register codec of the harness side: Modbus registers <-> values, as a profile declares them.

Written against the Modbus spec with ``struct`` rather than borrowed from pymodbus, so that the
harness and the simulators (which use pymodbus's converters) are two independent readings of
the same profile.
"""

from __future__ import annotations

import calendar
import operator
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timezone

from harness.config.modbus_map import (
    ClockEncoding,
    DataType,
    IntField,
    LayoutWord,
    ModbusClock,
    ModbusJournal,
    ModbusLoadProfile,
    ModbusPoint,
    WordOrder,
)
from harness.events import JournalEntry
from harness.intervals import IntervalData

_STRUCT = {DataType.BOOL: "H", DataType.U16: "H", DataType.I16: "h", DataType.U32: "I", DataType.I32: "i",
           DataType.U64: "Q", DataType.I64: "q", DataType.F32: "f", DataType.F64: "d"}


def _bytes(registers: Sequence[int], order: WordOrder) -> bytes:
    regs = list(registers) if order == WordOrder.BIG else list(reversed(registers))
    return b"".join(r.to_bytes(2, "big") for r in regs)


def _registers(data: bytes, order: WordOrder) -> list[int]:
    regs = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    return regs if order == WordOrder.BIG else list(reversed(regs))


def decode_raw(type_: DataType, registers: Sequence[int], order: WordOrder) -> int | float:
    return struct.unpack(">" + _STRUCT[type_], _bytes(registers, order))[0]


def decode_point(point: ModbusPoint, registers: Sequence[int]) -> float | int | str:
    """The point's value in canonical units (ints stay ints when the scale is integral)."""
    if point.type == DataType.STRING:
        return _bytes(registers, WordOrder.BIG).rstrip(b"\0").decode("ascii", errors="replace").strip()
    raw = decode_raw(point.type, registers, point.word_order)
    value = raw * point.factor
    if isinstance(raw, int) and float(value).is_integer() and point.factor >= 1:
        return int(value)
    return value


def point_reader(point: ModbusPoint) -> Callable[[Sequence[int]], tuple[float | int | str, float | None]]:
    """``(decode_point, resolution)`` of one point, with all that does not depend on the registers
    (struct formats, word order, factor) worked out once: a driver's read loop calls this per point
    per read. Same values and same errors as the two functions it stands for."""
    if point.type == DataType.STRING or point.type.is_float:
        def general(registers: Sequence[int]) -> tuple[float | int | str, float | None]:
            value = decode_point(point, registers)
            return value, resolution(point, value)
        return general
    words = struct.Struct(f">{point.type.register_count}H")
    unpack = struct.Struct(">" + _STRUCT[point.type]).unpack
    little = point.word_order != WordOrder.BIG
    factor = point.factor
    may_be_int = factor >= 1
    step = resolution(point, 0)  # an integer's step does not depend on its value: the scale, or the declared one

    def integer(registers: Sequence[int]) -> tuple[float | int | str, float | None]:
        raw = unpack(words.pack(*(reversed(registers) if little else registers)))[0]
        value = raw * factor
        if may_be_int and float(value).is_integer():
            return int(value), step
        return value, step
    return integer


def batch_reader(members: Sequence[tuple[int, ModbusPoint]]
                 ) -> Callable[[Sequence[int]], list[tuple[float | int, float]]] | None:
    """``point_reader`` of every point of one request at once — ``members`` are (offset in the request's
    registers, point) — with one ``struct`` call for all of them: the same values and resolutions, in
    ``members``' order. None when a point is not an integer (floats and strings keep their own readers).
    Why: a read of many quantities decodes every point of every request, on every read of a check."""
    if not members or any(p.type == DataType.STRING or p.type.is_float for _, p in members):
        return None
    order: list[int] = []  # the registers in the order that makes every point big-endian
    fmt = ">"
    for offset, point in members:
        own = list(range(offset, offset + point.register_count))
        order += own if point.word_order == WordOrder.BIG else own[::-1]
        fmt += _STRUCT[point.type]
    pick: Callable[[Sequence[int]], Sequence[int]] = (
        operator.itemgetter(*order) if len(order) > 1 else lambda registers: (registers[order[0]],))
    words = struct.Struct(f">{len(order)}H").pack
    unpack = struct.Struct(fmt).unpack
    scales = [(point.factor, point.factor >= 1, resolution(point, 0)) for _, point in members]

    def read(registers: Sequence[int]) -> list[tuple[float | int, float]]:
        out: list[tuple[float | int, float]] = []
        for raw, (factor, may_be_int, step) in zip(unpack(words(*pick(registers))), scales, strict=True):
            value = raw * factor
            out.append((int(value) if may_be_int and float(value).is_integer() else value, step))
        return out
    return read


def encode_point(point: ModbusPoint, value: float | int | str) -> list[int]:
    if point.type == DataType.STRING:  # ASCII, two characters a register, NUL-padded to the declared length
        assert point.length is not None
        return _registers(str(value).encode("ascii")[: 2 * point.length].ljust(2 * point.length, b"\0"),
                          WordOrder.BIG)
    assert not isinstance(value, str)
    raw = value / point.factor
    if not point.type.is_float:
        raw = round(raw)
    return _registers(struct.pack(">" + _STRUCT[point.type], raw), point.word_order)


def resolution(point: ModbusPoint, value: float | int | str) -> float | None:
    """The smallest change the register can show near ``value``, in canonical units: the encoding's
    step, or the device's declared counting step when that is coarser."""
    if point.type == DataType.STRING:
        return None
    step = _encoding_step(point, value)
    declared = point.resolution * point.factor if point.resolution is not None else 0.0
    return max(step, declared)


def _encoding_step(point: ModbusPoint, value: float | int | str) -> float:
    if point.type == DataType.F32:
        raw = abs(float(value)) / point.factor
        ulp = struct.unpack(">f", struct.pack(">f", raw))[0]
        bits = struct.unpack(">I", struct.pack(">f", ulp))[0]
        nxt = struct.unpack(">f", struct.pack(">I", bits + 1))[0]
        return (nxt - ulp) * point.factor
    if point.type == DataType.F64:
        import math

        return math.ulp(abs(float(value)) / point.factor) * point.factor
    return point.factor


def decode_clock(clock: ModbusClock, registers: Sequence[int], tz: timezone) -> datetime:
    """The device clock as an aware datetime; ValueError when the registers hold no valid date."""
    if clock.encoding == ClockEncoding.UNIX:
        secs = decode_raw(DataType(clock.type), registers, clock.word_order)
        return datetime.fromtimestamp(secs, UTC).astimezone(tz)
    if clock.encoding == ClockEncoding.YMDHMS:
        y, mo, d, h, mi, s = registers
        return datetime(y, mo, d, h, mi, s, tzinfo=tz)
    yy, md, hm, ms = registers
    sec, milli = divmod(ms, 1000)
    return datetime(2000 + (yy & 0x7F), (md >> 8) & 0x0F, md & 0x1F, (hm >> 8) & 0x1F, hm & 0x3F, sec,
                    milli * 1000, tzinfo=tz)


def encode_clock(clock: ModbusClock, when: datetime, tz: timezone) -> list[int]:
    local = when.astimezone(tz)
    if clock.encoding == ClockEncoding.UNIX:
        secs = calendar.timegm(when.astimezone(UTC).timetuple())
        return _registers(struct.pack(">" + _STRUCT[DataType(clock.type)], secs), clock.word_order)
    if clock.encoding == ClockEncoding.YMDHMS:
        return [local.year, local.month, local.day, local.hour, local.minute, local.second]
    return [local.year - 2000, (local.month << 8) | local.day, (local.hour << 8) | local.minute,
            local.second * 1000 + local.microsecond // 1000]


def clock_resolution_s(clock: ModbusClock) -> float:
    return 0.001 if clock.encoding == ClockEncoding.PACKED4 else 1.0


def decode_word(word: LayoutWord, registers: Sequence[int]) -> int:
    """A record store's bookkeeping register (head, count, selector)."""
    return int(decode_raw(DataType(word.type), registers, word.word_order))


def encode_word(word: LayoutWord, value: int) -> list[int]:
    return _registers(struct.pack(">" + _STRUCT[DataType(word.type)], value), word.word_order)


def decode_journal_entry(journal: ModbusJournal, registers: Sequence[int], tz: timezone) -> JournalEntry:
    """One entry from its ``entry.size`` registers; ValueError when its timestamp is no valid date."""
    lay = journal.entry

    def field(f: IntField) -> int:
        return _field(f, registers)

    ts = lay.timestamp
    when = decode_clock(ts.clock, registers[ts.offset:ts.offset + ts.register_count], tz)
    code = field(lay.code)
    return JournalEntry(sequence=field(lay.sequence), timestamp=when, kind=journal.codes.get(code), code=code,
                        details={name: field(f) for name, f in lay.details.items()})


def _field(f: IntField, registers: Sequence[int]) -> int:
    return int(decode_raw(DataType(f.type), registers[f.offset:f.offset + f.register_count], f.word_order))


def decode_interval_entry(profile: ModbusLoadProfile, registers: Sequence[int], tz: timezone) -> IntervalData:
    """One load-profile record from its ``entry.size`` registers: end time in UTC, increments in Wh /
    varh, the flags the status bits set; ValueError when its end time is no valid date."""
    lay = profile.entry
    t = lay.end_time
    end = decode_clock(t.clock, registers[t.offset:t.offset + t.register_count], tz).astimezone(UTC)
    status = _field(lay.status, registers)
    increments = {ch: _field(f, registers) * f.factor for ch, f in lay.channels().items()}
    flags = frozenset(flag for flag, bit in profile.status_bits.items() if (status >> bit) & 1)
    sequence = _field(lay.sequence, registers) if lay.sequence is not None else None
    return IntervalData(end=end, increments=increments, flags=flags, status=status, sequence=sequence)
