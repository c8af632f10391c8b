"""The simulated DLMS meter's own A-XDR (IEC 62056-6-2 / Green Book 9.5) data encoding and decoding.

Written here, not taken from ``dlms-cosem``: the harness's driver decodes with that library, so a
simulator that encoded with it too could share a bug with the driver and the two would agree on a
wrong answer. Only the types a meter needs: integers of every width, enum, boolean, octet and visible
strings, structures and arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

NULL, ARRAY, STRUCTURE, BOOLEAN = 0, 1, 2, 3
DOUBLE_LONG, DOUBLE_LONG_UNSIGNED, OCTET_STRING, VISIBLE_STRING = 5, 6, 9, 10
INTEGER, LONG, UNSIGNED, LONG_UNSIGNED, LONG64, LONG64_UNSIGNED, ENUM = 15, 16, 17, 18, 20, 21, 22

# tag -> (bytes, signed) of the fixed-width integer types
INTEGERS: dict[int, tuple[int, bool]] = {
    INTEGER: (1, True), LONG: (2, True), DOUBLE_LONG: (4, True), LONG64: (8, True),
    UNSIGNED: (1, False), LONG_UNSIGNED: (2, False), DOUBLE_LONG_UNSIGNED: (4, False), LONG64_UNSIGNED: (8, False),
    ENUM: (1, False),
}
TYPE_NAMES = {"integer": INTEGER, "long": LONG, "double_long": DOUBLE_LONG, "long64": LONG64,
              "unsigned": UNSIGNED, "long_unsigned": LONG_UNSIGNED, "double_long_unsigned": DOUBLE_LONG_UNSIGNED,
              "long64_unsigned": LONG64_UNSIGNED, "enum": ENUM, "octet_string": OCTET_STRING,
              "visible_string": VISIBLE_STRING}


class AxdrError(ValueError):
    """Bytes that are not a well-formed A-XDR Data."""


@dataclass(frozen=True)
class Data:
    """One decoded value with its type tag (a structure's or array's value is a tuple of Data)."""

    tag: int
    value: object


def length(n: int) -> bytes:
    """A-XDR / BER length: one byte below 128, else 0x8N and N big-endian bytes."""
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def read_length(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise AxdrError("length runs past the end")
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if n == 0 or n > 4 or pos + 1 + n > len(buf):
        raise AxdrError("bad length")
    return int.from_bytes(buf[pos + 1:pos + 1 + n], "big"), pos + 1 + n


def integer(tag: int, value: int) -> bytes:
    size, signed = INTEGERS[tag]
    try:
        return bytes([tag]) + int(value).to_bytes(size, "big", signed=signed)
    except OverflowError:
        raise AxdrError(f"{value} does not fit A-XDR type {tag}") from None


def octet_string(value: bytes) -> bytes:
    return bytes([OCTET_STRING]) + length(len(value)) + value


def visible_string(value: str) -> bytes:
    raw = value.encode("ascii")
    return bytes([VISIBLE_STRING]) + length(len(raw)) + raw


def structure(*members: bytes) -> bytes:
    return bytes([STRUCTURE]) + length(len(members)) + b"".join(members)


def array(items: list[bytes]) -> bytes:
    return bytes([ARRAY]) + length(len(items)) + b"".join(items)


def boolean(value: bool) -> bytes:
    return bytes([BOOLEAN, 0xFF if value else 0x00])


def decode(buf: bytes, pos: int = 0) -> tuple[Data, int]:
    """One Data at ``pos``; returns it and the position after it."""
    if pos >= len(buf):
        raise AxdrError("no data")
    tag = buf[pos]
    pos += 1
    if tag == NULL:
        return Data(tag, None), pos
    if tag in INTEGERS:
        size, signed = INTEGERS[tag]
        if pos + size > len(buf):
            raise AxdrError("integer runs past the end")
        return Data(tag, int.from_bytes(buf[pos:pos + size], "big", signed=signed)), pos + size
    if tag == BOOLEAN:
        if pos >= len(buf):
            raise AxdrError("boolean runs past the end")
        return Data(tag, buf[pos] != 0), pos + 1
    if tag in (OCTET_STRING, VISIBLE_STRING):
        n, pos = read_length(buf, pos)
        if pos + n > len(buf):
            raise AxdrError("string runs past the end")
        raw = bytes(buf[pos:pos + n])
        return Data(tag, raw if tag == OCTET_STRING else raw.decode("ascii", "replace")), pos + n
    if tag in (STRUCTURE, ARRAY):
        n, pos = read_length(buf, pos)
        items = []
        for _ in range(n):
            item, pos = decode(buf, pos)
            items.append(item)
        return Data(tag, tuple(items)), pos
    raise AxdrError(f"A-XDR type {tag} is not one this meter takes")


def decode_whole(buf: bytes) -> Data:
    data, end = decode(buf)
    if end != len(buf):
        raise AxdrError(f"{len(buf) - end} bytes after the data")
    return data


def date_time(year: int, month: int, day: int, weekday: int, hour: int, minute: int, second: int,
              hundredths: int, deviation: int | None, status: int = 0) -> bytes:
    """COSEM date-time (Blue Book 4.1.6.1), 12 bytes; ``deviation`` None is 0x8000, not specified."""
    dev = b"\x80\x00" if deviation is None else deviation.to_bytes(2, "big", signed=True)
    return (year.to_bytes(2, "big") + bytes([month, day, weekday, hour, minute, second, hundredths]) + dev
            + bytes([status]))


def parse_date_time(raw: bytes) -> tuple[int, int, int, int, int, int, int, int | None]:
    """year, month, day, hour, minute, second, hundredths, deviation (None: not specified)."""
    if len(raw) != 12:
        raise AxdrError(f"a date-time is 12 bytes, not {len(raw)}")
    dev = int.from_bytes(raw[9:11], "big", signed=True)
    hundredths = 0 if raw[8] == 0xFF else raw[8]
    return (int.from_bytes(raw[0:2], "big"), raw[2], raw[3], raw[5], raw[6], raw[7], hundredths,
            None if raw[9:11] == b"\x80\x00" else dev)
