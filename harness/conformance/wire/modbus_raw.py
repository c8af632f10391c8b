"""A small raw Modbus client: exact bytes out, exact bytes back (Modbus/TCP and RTU).

Frames are built here with struct — what a conformance probe needs is a *wrong* frame as often as a right
one (a length field that lies, a bad CRC, a quantity of 0), which a library client refuses to build. Every
exchange goes into the run transcript as hex with its latency. RTU uses pyserial on the rig's serial port
(a pseudo-terminal for a simulator); a reply on a line is complete when its own fields say so, or when the
line falls silent.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.conformance.wire.tcp import mbap_length, read_frame
from harness.reporting.texts import Msg

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 1, 2, 3, 4
GATEWAY_NO_RESPONSE = 0x0B


def crc(data: bytes) -> bytes:
    """The two CRC-16/MODBUS bytes of an RTU frame, low byte first as on the line."""
    from pymodbus.framer.rtu import FramerRTU

    return FramerRTU.compute_CRC(data).to_bytes(2, "big")


def mbap(pdu: bytes, unit: int, tid: int, *, protocol: int = 0, length: int | None = None) -> bytes:
    """A Modbus/TCP ADU; ``length`` overrides the header's length field (a lying header)."""
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1 if length is None else length, unit) + pdu


def rtu(pdu: bytes, unit: int, *, good_crc: bool = True) -> bytes:
    frame = bytes([unit]) + pdu
    check = crc(frame)
    return frame + (check if good_crc else bytes([check[0] ^ 0xFF, check[1] ^ 0x5A]))


def read_pdu(fc: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", fc, address, count)


def write_single_pdu(address: int, value: int) -> bytes:
    return struct.pack(">BHH", 6, address, value)


def write_coil_pdu(address: int, value: int) -> bytes:
    """FC05; ``value`` as sent: 0xFF00 is ON, 0x0000 OFF, anything else illegal (exception 03)."""
    return struct.pack(">BHH", 5, address, value)


def write_coils_pdu(address: int, bits: list[int], byte_count: int | None = None,
                    count: int | None = None) -> bytes:
    """FC15 of ``bits`` (packed LSB first); ``count`` / ``byte_count`` override the header (a lying request)."""
    packed = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        packed[i // 8] |= (1 if bit else 0) << (i % 8)
    n = len(bits) if count is None else count
    return struct.pack(">BHHB", 15, address, n, len(packed) if byte_count is None else byte_count) + bytes(packed)


def write_multiple_pdu(address: int, values: list[int], byte_count: int | None = None,
                       count: int | None = None) -> bytes:
    n = len(values) if count is None else count
    return struct.pack(">BHHB", 16, address, n, 2 * len(values) if byte_count is None else byte_count) + \
        b"".join(struct.pack(">H", v & 0xFFFF) for v in values)


@dataclass(frozen=True)
class Answer:
    """What came back to one request: the raw reply (None: nothing within the wait) and its parts."""

    sent: bytes
    raw: bytes | None
    latency_s: float
    closed: bool = False  # the DUT closed (or reset) the connection instead of answering
    tcp: bool = True

    @property
    def answered(self) -> bool:
        return bool(self.raw)

    @property
    def pdu(self) -> bytes:
        if not self.raw:
            return b""
        return self.raw[7:] if self.tcp else self.raw[1:-2]

    @property
    def function_code(self) -> int | None:
        return self.pdu[0] if self.pdu else None

    @property
    def exception(self) -> int | None:
        """The exception code of an exception reply, else None."""
        pdu = self.pdu
        return pdu[1] if len(pdu) >= 2 and pdu[0] & 0x80 else None

    @property
    def header(self) -> tuple[int, int, int, int] | None:
        """(transaction id, protocol id, length, unit) of a TCP reply."""
        if not self.tcp or not self.raw or len(self.raw) < 7:
            return None
        return struct.unpack(">HHHB", self.raw[:7])

    def describe(self) -> str:
        if self.closed and not self.raw:
            return Msg("connection closed, no answer")
        if not self.raw:
            return Msg("no answer")
        if self.exception is not None:
            return Msg("exception {exception:02X} (function code 0x{function_code:02X})", exception=self.exception,
                       function_code=self.function_code)
        return Msg("answer, function code 0x{function_code:02X}, {n} PDU bytes", function_code=self.function_code,
                   n=len(self.pdu))


class RawModbus:
    """Raw exchanges with one DUT: ``request(pdu)`` framed for its transport, or ``send_frame(bytes)``."""

    def __init__(self, runtime: Any) -> None:
        self.rt = runtime
        self.unit = runtime.spec.unit_id
        self.timeout = runtime.timing.request_timeout_s
        self.tcp = runtime.spec.transport.tcp is not None
        self._serial: Any = None
        self._tid = 0x5A00

    @property
    def address(self) -> tuple[str, int]:
        return str(self.rt.endpoint["host"]), int(self.rt.endpoint["port"])

    def next_tid(self) -> int:
        self._tid = (self._tid + 0x0101) & 0xFFFF or 1
        return self._tid

    def frame(self, pdu: bytes, unit: int | None = None) -> bytes:
        unit = self.unit if unit is None else unit
        return mbap(pdu, unit, self.next_tid()) if self.tcp else rtu(pdu, unit)

    def request(self, pdu: bytes, unit: int | None = None, wait_s: float | None = None, what: str = "") -> Answer:
        """One well-framed request (TCP: a fresh connection, so that nothing left over from an earlier probe
        can be taken for its answer)."""
        return self.send_frame(self.frame(pdu, unit), wait_s, what)

    def send_frame(self, frame: bytes, wait_s: float | None = None, what: str = "") -> Answer:
        wait = self.timeout if wait_s is None else wait_s
        answer = self._tcp(frame, wait) if self.tcp else self._rtu(frame, wait)
        self._record(answer, what)
        return answer

    # ---- TCP ------------------------------------------------------------------------------------------
    def _tcp(self, frame: bytes, wait: float) -> Answer:
        t0 = time.perf_counter()
        with socket.create_connection(self.address, timeout=self.timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t0 = time.perf_counter()
            s.sendall(frame)
            raw, closed = read_frame(s, t0 + wait, mbap_length)
        return Answer(frame, raw, time.perf_counter() - t0, closed, tcp=True)

    # ---- RTU ------------------------------------------------------------------------------------------
    def _port(self) -> Any:
        if self._serial is None:
            self._serial = open_line(self.rt)
        return self._serial

    def _rtu(self, frame: bytes, wait: float) -> Answer:
        port = self._port()
        port.reset_input_buffer()
        t0 = time.perf_counter()
        port.write(frame)
        port.flush()
        raw = read_rtu_reply(port, t0 + wait, self.rt.spec.transport.serial.baudrate)
        return Answer(frame, raw or None, time.perf_counter() - t0, tcp=False)

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    def _record(self, answer: Answer, what: str) -> None:
        transcript = self.rt.transcript
        if transcript is not None:
            transcript.record(self.rt.name, op="raw", what=what, sent=answer.sent.hex(),
                              received=answer.raw.hex() if answer.raw else None, closed=answer.closed,
                              latency_ms=round(answer.latency_s * 1000, 3))


def open_line(runtime: Any) -> Any:
    """The harness's end of the DUT's serial line (pyserial, short read timeout: callers poll to deadlines)."""
    import serial

    line = runtime.spec.transport.serial
    return serial.serial_for_url(str(runtime.endpoint["serial_port"]), baudrate=line.baudrate, parity=line.parity,
                                 stopbits=line.stopbits, bytesize=line.bytesize, timeout=0.01)


def silence_s(baudrate: int) -> float:
    """t3.5, the silence that ends an RTU frame — at least 20 ms: a pseudo-terminal has no character timing."""
    return max(0.02, 3.5 * 11 / baudrate)


def rtu_reply_length(head: bytes) -> int | None:
    """The length of an RTU reply from its first bytes (unit, function code, byte count), if known yet."""
    if len(head) < 2:
        return None
    fc = head[1]
    if fc & 0x80:
        return 5
    if fc in (1, 2, 3, 4, 0x17):
        return 5 + head[2] if len(head) >= 3 else None
    if fc in (5, 6, 15, 16):
        return 8
    if fc == 22:  # mask write: the request echoed
        return 10
    return None


def read_rtu_reply(port: Any, deadline: float, baudrate: int,
                   length: Callable[[bytes], int | None] | None = None) -> bytes:
    """Bytes from the line until the reply's own length (``length``: RTU's unless given) is reached, the line is
    silent for 3.5 characters (at least 20 ms: a pseudo-terminal has no character timing), or ``deadline``."""
    length = length or rtu_reply_length
    silence = silence_s(baudrate)
    buf = b""
    last = time.perf_counter()
    while time.perf_counter() < deadline:
        chunk = port.read(1)  # blocks until a byte arrives (or the port's short timeout), then takes the rest
        if chunk and port.in_waiting:
            chunk += port.read(port.in_waiting)
        now = time.perf_counter()
        if chunk:
            buf += chunk
            last = now
            expected = length(buf)
            if expected is not None and len(buf) >= expected:
                return buf
        elif buf and now - last >= silence:
            return buf
    return buf
