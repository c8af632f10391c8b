"""Malformed and fuzzed Modbus/TCP requests, built with scapy (``scapy.contrib.modbus``), reproducibly.

Six families, in the manner of ISASecure's communication robustness testing: scapy's ``fuzz()`` of every
request type it knows (function code pinned, length fields computed, so the frame reaches the device's
handler of that function); count fields set at random around their limits (quantities 0..130, byte counts
0..255 — where parsers trust one field and size a buffer by another); PDUs cut short; PDUs with bytes
after their end; unassigned, user-defined and exception-range function codes with random bodies; and
MBAP headers that lie (protocol id, length, unit id). The header's fields are pinned everywhere else:
``fuzz()`` of the ADU would randomise ``len`` and ``protoId`` and the frame would never reach a handler.

The same seed gives the same cases, byte for byte: scapy draws its random values from Python's ``random``,
which is seeded here and restored afterwards.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

FAMILIES = (("fuzz", 30), ("counts", 25), ("truncated", 10), ("trailing", 10), ("raw_function", 10),
            ("mbap", 15))
COUNT_FIELDS = {  # request type -> count fields set at random (the rest fuzzed)
    "ModbusPDU03ReadHoldingRegistersRequest": ("quantity",),
    "ModbusPDU04ReadInputRegistersRequest": ("quantity",),
    "ModbusPDU0FWriteMultipleCoilsRequest": ("quantityOutput", "byteCount"),
    "ModbusPDU10WriteMultipleRegistersRequest": ("quantityRegisters", "byteCount"),
    "ModbusPDU17ReadWriteMultipleRegistersRequest": ("readQuantityRegisters", "writeQuantityRegisters",
                                                     "byteCount"),
}
ODD_FUNCTION_CODES = (0, 9, 10, 13, 14, 18, 19, 25, 41, 42, 65, 72, 100, 110, 127, 128, 131, 200, 255)


@dataclass(frozen=True)
class Case:
    """One fuzz case: which, how it was made, and the exact bytes of the frame."""

    index: int
    family: str
    what: str
    frame: bytes


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _request_types() -> list[type]:
    from scapy.contrib import modbus

    return [getattr(modbus, n) for n in sorted(dir(modbus))
            if n.startswith("ModbusPDU") and n.endswith("Request") and "FunctionCode" not in n]


def modbus_cases(seed: int, count: int, unit: int) -> list[Case]:
    """``count`` cases for a DUT at ``unit``, the same for the same seed."""
    from scapy.contrib import modbus
    from scapy.packet import Raw, fuzz
    from scapy.volatile import RandByte, RandNum

    types = _request_types()
    names, weights = zip(*FAMILIES, strict=True)
    cases: list[Case] = []
    with _seeded(seed):
        for index in range(count):
            family = random.choices(names, weights)[0]
            tid = (index + 1) & 0xFFFF
            adu = modbus.ModbusADURequest(transId=tid, protoId=0, unitId=unit)
            if family == "fuzz":
                kind = random.choice(types)
                pdu = fuzz(kind(funcCode=kind().funcCode))
                what = f"fuzz({kind.__name__})"
            elif family == "counts":
                kind = getattr(modbus, random.choice(sorted(COUNT_FIELDS)))
                fields = {f: (RandByte() if f == "byteCount" else RandNum(0, 130)) for f in COUNT_FIELDS[kind.__name__]}
                pdu = fuzz(kind(funcCode=kind().funcCode, **fields))
                what = f"{kind.__name__} with random {', '.join(fields)}"
            elif family in ("truncated", "trailing"):
                kind = random.choice(types)
                body = bytes(fuzz(kind(funcCode=kind().funcCode)))
                if family == "truncated" and len(body) > 1:
                    cut = random.randint(1, len(body) - 1)
                    pdu, what = Raw(body[:cut]), f"{kind.__name__} cut to {cut} of {len(body)} bytes"
                else:
                    extra = random.randint(1, 8)
                    pdu = Raw(body + random.randbytes(extra))
                    what = f"{kind.__name__} with {extra} bytes after its end"
            elif family == "raw_function":
                fc = random.choice(ODD_FUNCTION_CODES)
                pdu = Raw(bytes([fc]) + random.randbytes(random.randint(0, 8)))
                what = f"function code {fc} with a random body"
            else:
                kind = random.choice(types)
                pdu = fuzz(kind(funcCode=kind().funcCode))
                body_len = len(bytes(pdu)) + 1
                lie = random.choice(("protoId", "len", "unitId"))
                if lie == "protoId":
                    adu = modbus.ModbusADURequest(transId=tid, protoId=random.randint(1, 0xFFFF), unitId=unit)
                elif lie == "len":
                    wrong = max(0, body_len + random.choice((-3, -2, -1, 1, 2, 3, 200)))
                    adu = modbus.ModbusADURequest(transId=tid, protoId=0, len=wrong, unitId=unit)
                else:
                    adu = modbus.ModbusADURequest(transId=tid, protoId=0, unitId=random.choice((0, 255, unit ^ 1)))
                what = f"{kind.__name__} under an MBAP header with a wrong {lie}"
            cases.append(Case(index, family, what, bytes(adu / pdu)))
    return cases
