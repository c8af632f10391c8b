"""Coils and discrete inputs of a simulated Modbus device on the wire: FC01 / FC02 reads and FC05 / FC15
writes, answered from the device's own points and settings.

pymodbus keeps bits in a store of its own; a simulated device's truth is its spans and settings (the same as
for its registers), so a well-formed bit request (``WireRules`` checked quantity, byte count and coil value
first) is answered here through the device's ``BitServer`` — ``SimulatedModbusDevice.serve_bits``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

# (function code, address, count, bits to write or None to read) -> bits read ([] for a write) or exception code
BitServer = Callable[[int, int, int, list[int] | None], list[int] | int]
BIT_CODES = (1, 2, 5, 15)
MAX_READ_BITS, MAX_WRITE_BITS = 2000, 1968  # FC1/FC2 and FC15 quantities (application protocol spec 6.1, 6.11)
COIL_ON, COIL_OFF = 0xFF00, 0x0000


def answer_bits(bits: BitServer, pdu: bytes) -> bytes:
    """The reply PDU to a well-formed FC1/2/5/15 request: the bits packed LSB first, the write echoed, or an
    exception."""
    fc, address = pdu[0], struct.unpack(">H", pdu[1:3])[0]
    if fc in (1, 2):
        (count,) = struct.unpack(">H", pdu[3:5])
        result = bits(fc, address, count, None)
    elif fc == 5:
        result = bits(fc, address, 1, [1 if pdu[3:5] == COIL_ON.to_bytes(2, "big") else 0])
    else:
        (count,) = struct.unpack(">H", pdu[3:5])
        result = bits(fc, address, count, [(pdu[6 + i // 8] >> (i % 8)) & 1 for i in range(count)])
    if isinstance(result, int):
        return bytes([fc | 0x80, result])
    if fc in (5, 15):
        return pdu if fc == 5 else pdu[:5]
    packed = bytearray((len(result) + 7) // 8)
    for i, bit in enumerate(result):
        packed[i // 8] |= (bit & 1) << (i % 8)
    return bytes([fc, len(packed)]) + bytes(packed)
