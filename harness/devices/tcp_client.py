"""The Modbus/TCP client the driver uses: frames built and checked here with ``struct``, one socket.

Why not pymodbus's ``ModbusTcpClient``: certification reads through the driver all the time, with the
transcript on, and the library's synchronous call path (request objects, a transaction manager, a
framer, non-blocking receive with ``select`` and clock reads per call) was most of the driver's own CPU
per read (issue 18). A Modbus/TCP exchange of the functions the driver uses is small enough to state
here against the spec, as the codec does, which also keeps the harness a reading of the protocol
independent of the simulators' (pymodbus). RTU stays on pymodbus (``rtu_client.py``).

What it guarantees the driver: every wait is bounded by ``timeout`` (socket timeout per receive and
a deadline over a reply that trickles in); a reply is taken only if it answers this request — its
transaction id, protocol id, unit and function code, and a length its own fields agree with —
otherwise ``ModbusIOException`` is raised and the driver drops the connection and retries, so a
late reply to an earlier request can never be read as the answer to a later one. A closed or reset
connection raises ``ConnectionException``; other socket errors propagate as ``OSError``.

Replies mimic the few attributes the driver reads of pymodbus's (``isError()``, ``exception_code``,
``registers``, ``bits``), so the driver and its transcript treat both transports alike.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

from pymodbus.exceptions import ConnectionException, ModbusIOException

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length of what follows, unit id
_READ = struct.Struct(">BHH")  # function code, address, count
_MAX_ADU = 260  # 7 header bytes + a PDU of at most 253
_WORDS: dict[int, struct.Struct] = {}  # byte count -> its registers' Struct


@dataclass(slots=True)
class Reply:
    """One answer as the driver reads it (pymodbus's names: the RTU path hands it pymodbus replies)."""

    function_code: int
    registers: list[int] = field(default_factory=list)
    bits: list[bool] = field(default_factory=list)
    exception_code: int = 0

    def isError(self) -> bool:
        return self.function_code > 0x80


class TcpClient:
    """Modbus/TCP to one device: FC 1-4 reads, FC 5 and FC 16 writes; one request at a time."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.socket: socket.socket | None = None
        self._tid = 0

    @property
    def connected(self) -> bool:
        return self.socket is not None

    def connect(self) -> bool:
        if self.socket is not None:
            return True
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError:
            return False
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A blocking socket whose kernel bounds each send and receive: one system call each, where Python's
        # own socket timeout polls before every call.
        seconds = max(self.timeout, 0.001)  # a zero timeval would mean no bound at all
        bound = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, bound)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, bound)
        self.socket = sock
        return True

    def close(self) -> None:
        sock, self.socket = self.socket, None
        if sock is not None:
            sock.close()

    # ---- the functions the driver uses (pymodbus's signatures) ---------------------------------------
    def read_coils(self, address: int, *, count: int, device_id: int) -> Reply:
        return self._read(1, address, count, device_id)

    def read_discrete_inputs(self, address: int, *, count: int, device_id: int) -> Reply:
        return self._read(2, address, count, device_id)

    def read_holding_registers(self, address: int, *, count: int, device_id: int) -> Reply:
        return self._read(3, address, count, device_id)

    def read_input_registers(self, address: int, *, count: int, device_id: int) -> Reply:
        return self._read(4, address, count, device_id)

    def write_coil(self, address: int, value: bool, *, device_id: int) -> Reply:
        pdu = self._exchange(struct.pack(">BHH", 5, address, 0xFF00 if value else 0), device_id)
        return self._reply(5, pdu, 4) or Reply(5, bits=[pdu[3:5] == b"\xff\x00"])

    def write_registers(self, address: int, values: list[int], *, device_id: int) -> Reply:
        request = struct.pack(f">BHHB{len(values)}H", 16, address, len(values), 2 * len(values), *values)
        return self._reply(16, self._exchange(request, device_id), 4) or Reply(16)

    # ---- framing ------------------------------------------------------------------------------------------
    def _read(self, fc: int, address: int, count: int, unit: int) -> Reply:
        pdu = self._exchange(_READ.pack(fc, address, count), unit)
        failed = self._reply(fc, pdu, 1)
        if failed is not None:
            return failed
        data = pdu[2:]
        if pdu[1] != len(data):
            raise ModbusIOException(f"byte count {pdu[1]} in a reply of {len(data)} data bytes", function_code=fc)
        if fc > 2:
            if len(data) % 2:
                raise ModbusIOException(f"odd byte count {len(data)} for registers", function_code=fc)
            words = _WORDS.get(len(data))
            if words is None:
                words = _WORDS[len(data)] = struct.Struct(f">{len(data) // 2}H")
            return Reply(fc, registers=list(words.unpack(data)))
        return Reply(fc, bits=[bool(byte >> i & 1) for byte in data for i in range(8)])

    @staticmethod
    def _reply(fc: int, pdu: bytes, body: int) -> Reply | None:
        """An exception reply as a Reply; None for a normal one of at least ``body`` bytes after the function
        code; anything else does not answer this request."""
        if pdu[0] == fc | 0x80 and len(pdu) == 2:
            return Reply(pdu[0], exception_code=pdu[1])
        if pdu[0] != fc or len(pdu) < 1 + body:
            raise ModbusIOException(f"reply {pdu.hex()} does not answer function {fc}", function_code=fc)
        return None

    def _exchange(self, pdu: bytes, unit: int) -> bytes:
        """Send one request, return the PDU of its reply."""
        sock = self.socket
        if sock is None:
            raise ConnectionException(f"not connected to {self.host}:{self.port}")
        self._tid = tid = self._tid % 0xFFFF + 1
        sock.sendall(_MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu)
        reply = self._receive(sock, 7)
        got_tid, protocol, length, got_unit = _MBAP.unpack_from(reply)
        if protocol != 0 or not 2 <= length <= _MAX_ADU - 6:
            raise ModbusIOException(f"not a Modbus/TCP header: {reply[:7].hex()}")
        if len(reply) < 6 + length:
            reply += self._receive(sock, 6 + length - len(reply))
        if len(reply) != 6 + length or got_tid != tid or got_unit != unit:
            raise ModbusIOException(f"reply {reply.hex()} does not answer transaction {tid} to unit {unit}")
        return reply[7:]

    def _receive(self, sock: socket.socket, at_least: int) -> bytes:
        """At least ``at_least`` bytes (more if they came with them): each wait bounded by ``timeout`` (the
        socket's, set at connect), a reply in pieces by another ``timeout`` from its first piece."""
        try:
            data = sock.recv(_MAX_ADU)
            if len(data) >= at_least:
                return data
            deadline = time.monotonic() + self.timeout
            while data:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"reply incomplete after {self.timeout:g} s ({len(data)} bytes)")
                more = sock.recv(_MAX_ADU)
                if not more:
                    break
                data += more
                if len(data) >= at_least:
                    return data
        except BlockingIOError:  # the kernel's bound (SO_RCVTIMEO) passed
            raise TimeoutError(f"no reply within {self.timeout:g} s") from None
        raise ConnectionException(f"connection closed after {len(data)} bytes of a reply")
