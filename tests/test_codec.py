"""The harness codec and the simulator's (pymodbus) encoding are independent; they must agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from harness.config.modbus_map import ClockEncoding, DataType, ModbusClock, ModbusPoint, WordOrder
from harness.devices import codec
from harness.simulators import regimage

VALUES = {DataType.U16: 51234, DataType.I16: -1234, DataType.U32: 3_000_000_001, DataType.I32: -2_000_000_001,
          DataType.U64: 2**61 + 7, DataType.I64: -(2**61) - 7, DataType.F32: 1234.5, DataType.F64: -98765.4321}


@pytest.mark.parametrize("order", list(WordOrder))
@pytest.mark.parametrize("type_", list(VALUES))
def test_scalar_types_agree(type_, order):
    point = ModbusPoint(address=0, type=type_, word_order=order)
    regs = regimage.encode_point(point, VALUES[type_])
    assert len(regs) == type_.register_count
    assert codec.decode_point(point, regs) == pytest.approx(VALUES[type_])
    assert codec.encode_point(point, VALUES[type_]) == regs


def test_scale_and_unit_give_canonical_values():
    point = ModbusPoint(address=0, type=DataType.U32, scale=0.01, unit="kvarh", word_order=WordOrder.LITTLE)
    regs = regimage.encode_point(point, 123_450.0)  # varh
    assert regs == [12345, 0]  # low word first: 12345 x 0.01 kvarh = 123.45 kvarh
    assert codec.decode_point(point, regs) == pytest.approx(123_450.0)
    assert codec.resolution(point, 0) == pytest.approx(10.0)


def test_declared_counting_step_is_the_resolution_when_coarser_than_the_encoding():
    """A float kWh register fed by a 1 Wh pulse counter changes in 1 Wh steps, not in float ulps."""
    floating = ModbusPoint(address=0, type=DataType.F32, unit="kWh")
    counted = ModbusPoint(address=0, type=DataType.F32, unit="kWh", resolution=0.001)
    assert codec.resolution(floating, 900_000.0) == pytest.approx(2 ** -14 * 1000)  # ulp of 900 kWh, in Wh
    assert codec.resolution(counted, 900_000.0) == pytest.approx(1.0)
    assert codec.resolution(counted, 1e10) == pytest.approx(1000.0)  # 10 GWh: the encoding is coarser


def test_strings_agree():
    point = ModbusPoint(address=0, type=DataType.STRING, length=4)
    assert codec.decode_point(point, regimage.encode_point(point, "1.4.2")) == "1.4.2"


@pytest.mark.parametrize("encoding", list(ClockEncoding))
def test_clock_encodings_agree(encoding):
    tz = timezone(timedelta(hours=5))
    clock = ModbusClock(address=0, encoding=encoding)
    when = datetime(2026, 3, 21, 23, 59, 58, 250_000, tzinfo=UTC)
    regs = codec.encode_clock(clock, when, tz)
    local = regimage.decode_clock(clock, regs, 5 * 3600)
    expected = when.timestamp() + 5 * 3600
    resolution = codec.clock_resolution_s(clock)
    assert expected - resolution <= local <= expected
    back = codec.decode_clock(clock, regimage.encode_clock(clock, local, 5 * 3600), tz)
    assert abs(back.timestamp() - when.timestamp()) <= resolution


def test_invalid_clock_registers_raise():
    clock = ModbusClock(address=0, encoding=ClockEncoding.YMDHMS)
    with pytest.raises(ValueError):
        codec.decode_clock(clock, [2026, 13, 1, 0, 0, 0], UTC)


def test_a_request_decoded_at_once_equals_each_point_decoded_alone():
    """codec.batch_reader (one struct call per request, the driver's read path) gives exactly what each point's
    own reader and codec.resolution give: values, their int/float kind, and resolutions, a declared counting
    step included."""
    points = [ModbusPoint(address=0, type=DataType.U64, unit="Wh"),
              ModbusPoint(address=4, type=DataType.U32, word_order=WordOrder.LITTLE, scale=0.01, unit="kvarh"),
              ModbusPoint(address=6, type=DataType.I32, scale=0.1, unit="W"),
              ModbusPoint(address=8, type=DataType.I16, unit="kWh", resolution=2),
              ModbusPoint(address=9, type=DataType.I64, word_order=WordOrder.LITTLE, scale=10.0, unit="Wh")]
    registers = [0x0001, 0x2345, 0x6789, 0xABCD, 12345, 7, 0xFFFF, 0xFF38, 0xFFF6, 0x1234, 0x5678, 0x9ABC, 0x8DEF]
    together = codec.batch_reader([(p.address, p) for p in points])
    assert together is not None
    alone = [codec.point_reader(p)(registers[p.address:p.address + p.register_count]) for p in points]
    assert together(registers) == alone
    assert [type(v) for v, _ in together(registers)] == [type(v) for v, _ in alone]
    assert [r for _, r in alone] == [codec.resolution(p, v) for p, (v, _) in zip(points, alone, strict=True)]
    assert alone[3] == (-10_000, 2000)  # -10 kWh, counted in 2 kWh steps
    floating = ModbusPoint(address=13, type=DataType.F32)
    assert codec.batch_reader([(0, points[0]), (4, floating)]) is None  # floats keep their own reader
