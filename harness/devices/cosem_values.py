"""COSEM values as the DLMS driver writes and reads them: the date-time of the clock (class 8) and of a profile
buffer's clock column, and a number written as A-XDR Data of a declared type.

Apart from the driver because they are pure codecs — the profile's zone and deviation convention in, bytes out —
with no link, retry or association in them. (The simulated meter encodes its values with its own code,
``simulators/dlms_meter/axdr.py``, so a shared bug cannot make both sides agree.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from harness.devices.api import DeviceError
from harness.reporting.texts import Msg

UNSPECIFIED_DEVIATION = b"\x80\x00"


def decode_datetime(raw: bytes, tz: tzinfo, local_to_utc: bool) -> tuple[datetime, bool]:
    """A 12-byte COSEM date-time as an aware instant in ``tz``, and whether it shows hundredths. With a deviation,
    the fields are local time and the deviation gives UTC (its sign: ``local_to_utc`` or the Blue Book's
    UTC-to-local); without one they are ``tz``'s local time. ValueError when the fields are no date-time."""
    naive = datetime(int.from_bytes(raw[0:2], "big"), raw[2], raw[3], raw[5], raw[6], raw[7],
                     0 if raw[8] == 0xFF else raw[8] * 10000)
    if raw[9:11] != UNSPECIFIED_DEVIATION:
        dev = int.from_bytes(raw[9:11], "big", signed=True)
        offset = -dev if local_to_utc else dev
        naive -= timedelta(minutes=offset)  # UTC
        return naive.replace(tzinfo=UTC).astimezone(tz), raw[8] != 0xFF
    return naive.replace(tzinfo=tz), raw[8] != 0xFF


def encode_datetime(when: datetime, tz: tzinfo, local_to_utc: bool) -> bytes:
    """An instant as ``tz``'s local date-time with its deviation (the profile's sign convention)."""
    local = when.astimezone(tz)
    minutes = round(tz.utcoffset(None).total_seconds() / 60)  # type: ignore[union-attr]
    dev = -minutes if local_to_utc else minutes
    return (local.year.to_bytes(2, "big") + bytes([local.month, local.day, local.isoweekday(), local.hour,
                                                     local.minute, local.second, local.microsecond // 10000])
            + dev.to_bytes(2, "big", signed=True) + b"\x00")


def encode_value(type_name: str, value: float | int) -> bytes:
    """A number as the A-XDR Data of a declared type (the library's encoders: the driver's side)."""
    from dlms_cosem import dlms_data as d

    classes = {"integer": d.IntegerData, "long": d.LongData, "double_long": d.DoubleLongData,
               "long64": d.Long64Data, "unsigned": d.UnsignedIntegerData, "long_unsigned": d.UnsignedLongData,
               "double_long_unsigned": d.DoubleLongUnsignedData, "long64_unsigned": d.UnsignedLong64Data,
               "enum": d.EnumData}
    if type_name not in classes:
        raise DeviceError(Msg("a {type_name} cannot be written as a number", type_name=type_name))
    return classes[type_name](int(value)).to_bytes()
