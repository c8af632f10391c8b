"""The wire level of every simulated Modbus device: what its profile declares about it as a server, and the
wire-level seeded defects.

pymodbus 3.16 is lenient where the Modbus specifications are strict: it answers function codes nobody
declared (diagnostics, device identification, report server id), answers a read of 0 registers with a
malformed exception (function code 0x80), answers an unknown unit id with exception 04, and serves any
number of TCP connections. A golden device must do what its profile says, so every frame passes through
``WireRules`` before pymodbus sees it (a request handler per connection, set in by subclassing the
servers' ``callback_new_connection``): the declared function codes, unit-id policy and connection limit,
and the structure the application protocol specification gives each request (quantity 1..125, byte count
= 2 × quantity, a PDU exactly as long as its function code says; coils: quantity 1..2000 / 1..1968, byte count
= quantity / 8 rounded up, a coil value ON or OFF). Coils and discrete inputs a profile declares are served
here too, from the device's own points and settings (``BitServer``). Frames the golden must not answer are
dropped here; exceptions it must give are sent from here.

The seeded defects break exactly one of those duties each (``WIRE_DEFECTS`` in defects.py):
``wrong_exception_code``, ``answers_bad_crc``, ``mbap_length_ignored``, ``write_multiple_single_refused``,
``undeclared_fc_answered``, ``illegal_quantity_accepted``, ``any_unit_id_answered``,
``crash_on_malformed_frame``, ``hang_on_flood``, ``connection_limit_exhausts`` and ``half_open_blocks``.

On a serial line a frame ends with 3.5 character times of silence: bytes that have waited longer than that
for the rest of their frame (a truncated frame, line noise) are dropped before newer ones are framed, as an
RTU receiver's t3.5 timer does.
"""

from __future__ import annotations

import collections
import os
import struct
import sys
import time
from typing import Any

from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler

from harness.simulators.wire_bits import (
    BIT_CODES,
    COIL_OFF,
    COIL_ON,
    MAX_READ_BITS,
    MAX_WRITE_BITS,
    BitServer,
    answer_bits,
)

MAX_READ = 125  # registers per FC3/FC4 request (application protocol spec, 6.3/6.4)
MAX_WRITE = 123  # registers per FC16 request (6.12)
FLOOD_LIMIT = 1000  # hang_on_flood: this many requests within FLOOD_WINDOW_S and the server never answers again
# 3 s, not 1: the storm (1500 requests) must set the defect off on a loaded 2-core CI machine too, where the
# harness puts through ~400-600 requests/s; sound checks stay far below 330/s sustained
FLOOD_WINDOW_S = 3.0
# ... on a serial line, which carries far fewer: about 80 % of what a back-to-back storm puts through the
# simulator's line in a second (~100-150 requests/s on a pseudo-terminal), well above the sound requests among
# fuzz cases with reads between the frames
LINE_FLOOD_LIMIT = 80
DEFAULT_CONNECTION_SLOTS = 8  # connection_limit_exhausts on a profile that declares no max_connections
CRASH_EXIT = 70  # crash_on_malformed_frame: the process ends with this status (as a fault handler would)
GATEWAY_NO_RESPONSE = 0x0B
STACK_EXTRAS = (0x08, 0x2B)  # undeclared_fc_answered: diagnostics and device identification left enabled
PTY_SILENCE_S = 0.005  # shortest t3.5 on a pseudo-terminal, which has no character timing
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 1, 2, 3, 4

Decision = bytes | None | bool  # reply PDU to send / None: drop the frame / True: hand it to pymodbus



class WireRules:
    """Per process: the declared server behaviour and the wire defects, shared by every connection."""

    def __init__(self, profile: Any, defects: set[str], unit_id: int, flood_limit: int = FLOOD_LIMIT,
                 bits: BitServer | None = None, flood_window_s: float = FLOOD_WINDOW_S) -> None:
        m = profile.modbus
        self.bits = bits  # the device's coils and discrete inputs (FC1/2/5/15), if it serves any
        self.flood_limit = flood_limit  # hang_on_flood's trigger: requests within flood_window_s
        self.flood_window_s = flood_window_s
        self.unit_id = unit_id
        self.codes = set(m.served_function_codes(profile.clock is not None and profile.clock.writable))
        self.policy = m.unit_id_policy
        self.defects = defects
        self.slots = m.max_connections or (DEFAULT_CONNECTION_SLOTS if "connection_limit_exhausts" in defects
                                           else None)
        self.active = 0
        self.hung = False
        self._recent: collections.deque[float] = collections.deque()
        # write_multiple_single_refused: the declared holding registers (an address outside them is refused 02)
        self.holding = {a + i for t, a, n, _ in m.spans() if t.value == "holding" for i in range(n)} \
            if "write_multiple_single_refused" in defects else set()
        self.stalled_by: Any = None  # half_open_blocks: the connection whose half frame the server waits for
        self.waiting: list[Any] = []  # half_open_blocks: connections with a frame that wait behind it

    # ---- connections (TCP) ----------------------------------------------------------------------------
    def admit(self) -> bool:
        """A new connection: served while fewer than the declared limit are open, else closed at once."""
        if self.slots is not None and self.active >= self.slots:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        if "connection_limit_exhausts" in self.defects:
            return  # the slot of a closed connection is never freed
        self.active = max(0, self.active - 1)

    # ---- one request ----------------------------------------------------------------------------------
    def decide(self, unit: int, pdu: bytes) -> Decision:
        """What the device does with one complete request frame (unit id + PDU)."""
        if self.hung or not pdu:
            return None
        fc = pdu[0]
        if "crash_on_malformed_frame" in self.defects and _overruns_write_buffer(pdu):
            # FC 0x17's write values are copied by the byte count while the buffer was sized by the quantity.
            sys.stderr.write("wire: FC 0x17 byte count overruns the write buffer — process dies\n")
            sys.stderr.flush()
            os._exit(CRASH_EXIT)
        if unit != self.unit_id and self.policy != "any" and "any_unit_id_answered" not in self.defects:
            return bytes([(fc | 0x80) & 0xFF, GATEWAY_NO_RESPONSE]) if self.policy == "gateway" else None
        if fc not in self.codes:
            if fc in STACK_EXTRAS and "undeclared_fc_answered" in self.defects:
                return True  # the stack's own handlers answer it (diagnostics echo, device identification)
            return bytes([(fc | 0x80) & 0xFF, ILLEGAL_FUNCTION])
        if "illegal_quantity_accepted" in self.defects and fc in (3, 4) and len(pdu) == 5:
            (count,) = struct.unpack(">H", pdu[3:5])
            if not 1 <= count <= MAX_READ:
                return bytes([fc, (2 * count) & 0xFF]) + bytes(2 * count)  # no range check: a buffer of zeros
        if not _well_formed(pdu):
            return bytes([fc | 0x80, ILLEGAL_VALUE])
        if fc == 16 and "write_multiple_single_refused" in self.defects and pdu[3:5] == b"\x00\x01" \
                and struct.unpack(">H", pdu[1:3])[0] in self.holding:
            # address and structure are checked first (02, 03), then a block of one is refused: FC06 writes
            # single registers
            return bytes([fc | 0x80, ILLEGAL_FUNCTION])
        self._count_request()  # hang_on_flood counts the requests that reach the register work
        if fc in BIT_CODES and self.bits is not None:
            return answer_bits(self.bits, pdu)
        return True

    # ---- half_open_blocks: one frame at a time, read to its end --------------------------------------
    def blocked(self, handler: Any) -> bool:
        """Is the server stuck in another connection's half frame? Then ``handler``'s frame waits its turn."""
        if self.stalled_by is None or self.stalled_by is handler:
            return False
        if handler not in self.waiting:
            self.waiting.append(handler)
        return True

    def stall(self, handler: Any) -> None:
        """``handler`` has sent part of a frame: the server reads on until the rest comes (no timeout)."""
        if "half_open_blocks" in self.defects and self.stalled_by is None:
            self.stalled_by = handler

    def unstall(self, handler: Any) -> None:
        """``handler``'s frame is complete or its connection gone: the frames that waited are served."""
        if self.stalled_by is not handler:
            return
        self.stalled_by = None
        waiting, self.waiting = self.waiting, []
        for other in waiting:
            other.resume()

    def _count_request(self) -> None:
        if "hang_on_flood" not in self.defects or self.hung:
            return
        now = time.monotonic()
        self._recent.append(now)
        while self._recent and self._recent[0] < now - self.flood_window_s:
            self._recent.popleft()
        if len(self._recent) >= self.flood_limit:
            self.hung = True  # the request queue has overflowed into a state nothing leaves
            sys.stderr.write(f"wire: {self.flood_limit} requests within {self.flood_window_s:g} s — the server "
                             f"stops answering\n")


def request_length(pdu: bytes) -> int | None:
    """The length a request PDU of a register function code must have, from its own fields (None: unknown)."""
    if not pdu:
        return None
    fc = pdu[0]
    if fc in (1, 2, 3, 4, 5, 6):
        return 5
    if fc in (15, 16) and len(pdu) >= 6:
        return 6 + pdu[5]
    if fc == 0x17 and len(pdu) >= 10:
        return 10 + pdu[9]
    return None


def _well_formed(pdu: bytes) -> bool:
    fc = pdu[0]
    expected = request_length(pdu)
    if expected is not None and len(pdu) != expected:
        return False
    if expected is None and fc in (15, 16, 0x17):
        return False  # too short to hold its own quantity and byte count
    if fc in (1, 2):
        (count,) = struct.unpack(">H", pdu[3:5])
        return 1 <= count <= MAX_READ_BITS
    if fc == 5:
        return struct.unpack(">H", pdu[3:5])[0] in (COIL_ON, COIL_OFF)
    if fc == 15:
        (count,) = struct.unpack(">H", pdu[3:5])
        return 1 <= count <= MAX_WRITE_BITS and pdu[5] == (count + 7) // 8
    if fc in (3, 4):
        (count,) = struct.unpack(">H", pdu[3:5])
        return 1 <= count <= MAX_READ
    if fc == 16:
        (count,) = struct.unpack(">H", pdu[3:5])
        return 1 <= count <= MAX_WRITE and pdu[5] == 2 * count
    return True


def _overruns_write_buffer(pdu: bytes) -> bool:
    if pdu[0] != 0x17 or len(pdu) < 10:
        return False
    (quantity,) = struct.unpack(">H", pdu[7:9])
    return 1 <= quantity <= 121 and pdu[9] != 2 * quantity


# ---- Modbus/TCP ------------------------------------------------------------------------------------------
class _TcpHandler(ServerRequestHandler):
    """One TCP connection: MBAP framing checked here, then pymodbus for the register work."""

    rules: WireRules

    def __init__(self, owner: Any, rules: WireRules) -> None:
        super().__init__(owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect)
        self.rules = rules
        self._admitted = False
        self._echo_unit: int | None = None

    def callback_connected(self) -> None:
        super().callback_connected()
        self._admitted = self.rules.admit()
        if not self._admitted and self.transport is not None:
            self.transport.close()

    def callback_disconnected(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self.rules.release()
        self.rules.unstall(self)
        super().callback_disconnected(exc)

    def resume(self) -> None:
        """Frames that waited behind another connection's half frame (half_open_blocks) are served now."""
        if self.transport is not None and self.recv_buffer:
            self.recv_buffer = self.recv_buffer[self.callback_data(self.recv_buffer):]

    def callback_data(self, data: bytes, addr: tuple | None = None) -> int:
        if not self._admitted:
            return len(data)
        if self.rules.blocked(self):
            return 0
        used = self._frame(data, addr)
        if used == 0:
            self.rules.stall(self)
        else:
            self.rules.unstall(self)
        return used

    def _frame(self, data: bytes, addr: tuple | None) -> int:
        if len(data) < 7:
            return 0
        tid, protocol, length, unit = struct.unpack(">HHHB", data[:7])
        if "mbap_length_ignored" in self.defects:
            actual = request_length(data[7:])
            if actual is not None and actual + 1 != length and len(data) >= 7 + actual:
                length = actual + 1  # framed by the function code's own fields, whatever the header says
                data = data[:4] + struct.pack(">H", length) + data[6:7 + actual]
        if protocol != 0 or not 2 <= length <= 254:
            return len(data)  # not a Modbus frame: nothing in it can be trusted, the buffer is discarded
        if len(data) < 6 + length:
            return 0  # the header promises more bytes: wait for them (a frame is never answered early)
        frame = data[:6 + length]
        decision = self.rules.decide(unit, frame[7:])
        if decision is None:
            return len(frame)
        if isinstance(decision, bytes):
            self.transport.write(struct.pack(">HHHB", tid, 0, len(decision) + 1, unit) + decision)
            return len(frame)
        self._echo_unit = unit
        if unit != self.rules.unit_id:  # unit_id_policy any: served as the configured unit, echoed as sent
            frame = frame[:6] + bytes([self.rules.unit_id]) + frame[7:]
        super().callback_data(frame, addr)
        return len(frame)

    @property
    def defects(self) -> set[str]:
        return self.rules.defects

    def server_send(self, pdu: Any, addr: Any) -> None:
        if pdu and self._echo_unit is not None:
            pdu.dev_id = self._echo_unit
        if "wrong_exception_code" in self.defects and isinstance(pdu, ExceptionResponse) \
                and pdu.exception_code == ILLEGAL_ADDRESS:
            pdu.exception_code = DEVICE_FAILURE  # every refusal reported as a device failure
        super().server_send(pdu, addr)


class _RtuHandler(ServerRequestHandler):
    """The serial line: a frame is the whole buffer when its CRC holds (silence ends a frame on a real line;
    on a pseudo-terminal a request arrives in one or two reads)."""

    rules: WireRules

    def __init__(self, owner: Any, rules: WireRules, silence_s: float) -> None:
        super().__init__(owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect)
        self.rules = rules
        self._echo_unit: int | None = None
        self.silence_s = silence_s
        self._held = 0  # bytes left waiting for the rest of their frame
        self._last_rx = 0.0

    def callback_data(self, data: bytes, addr: tuple | None = None) -> int:
        """Bytes that waited longer than t3.5 for the rest of their frame are a frame of their own that ended
        incomplete: dropped, and the newer bytes framed alone."""
        now = time.monotonic()
        stale = self._held if self._held and now - self._last_rx > self.silence_s else 0
        self._last_rx = now
        used = self._frame(data[stale:], addr)
        self._held = len(data) - stale if used == 0 else 0
        return stale + used

    def _frame(self, data: bytes, addr: tuple | None) -> int:
        used = len(data)
        if len(data) < 4:
            return 0
        if not crc_ok(data):
            expected = request_length(data[1:])
            if expected is not None and len(data) >= expected + 3:
                if "answers_bad_crc" not in self.rules.defects:
                    return used  # a corrupted frame is ignored, never answered
                data = data[:expected + 1] + crc16(data[:expected + 1])
            else:
                start = next((i for i in range(1, len(data) - 3) if crc_ok(data[i:])), None)
                if start is None:
                    return used if len(data) > 256 else 0  # more to come, or line noise to forget
                data = data[start:]  # garbage before a sound frame (a stale, corrupted or partial one)
        unit, pdu = data[0], data[1:-2]
        if unit == 0:
            return used  # broadcast: executed by nobody here, answered by nobody
        decision = self.rules.decide(unit, pdu)
        if decision is None:
            return used
        if isinstance(decision, bytes):
            frame = bytes([unit]) + decision
            self.transport.write(frame + crc16(frame))
            return used
        self._echo_unit = unit
        if unit != self.rules.unit_id:  # unit_id_policy any: served as the configured unit, echoed as sent
            frame = bytes([self.rules.unit_id]) + pdu
            data = frame + crc16(frame)
        super().callback_data(data, addr)
        return used

    def server_send(self, pdu: Any, addr: Any) -> None:
        if pdu and self._echo_unit is not None:
            pdu.dev_id = self._echo_unit
        if "wrong_exception_code" in self.rules.defects and isinstance(pdu, ExceptionResponse) \
                and pdu.exception_code == ILLEGAL_ADDRESS:
            pdu.exception_code = DEVICE_FAILURE
        super().server_send(pdu, addr)


def crc16(data: bytes) -> bytes:
    """The two CRC bytes of an RTU frame as sent on the line (pymodbus's CRC-16/MODBUS)."""
    return FramerRTU.compute_CRC(data).to_bytes(2, "big")


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]) == frame[-2:]


class WireTcpServer(ModbusTcpServer):
    """``ModbusTcpServer`` whose connections go through ``WireRules``."""

    def __init__(self, context: Any, rules: WireRules, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        self.rules = rules

    def callback_new_connection(self) -> ServerRequestHandler:
        return _TcpHandler(self, self.rules)


class WireSerialServer(ModbusSerialServer):
    """``ModbusSerialServer`` whose line goes through ``WireRules``."""

    def __init__(self, context: Any, rules: WireRules, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        self.rules = rules

    def callback_new_connection(self) -> ServerRequestHandler:
        baudrate = self.comm_params.baudrate if self.comm_params.baudrate > 0 else 9600
        return _RtuHandler(self, self.rules, max(PTY_SILENCE_S, 3.5 * 11 / baudrate))


def tcp_server(device: Any, unit_id: int, address: tuple[str, int]) -> WireTcpServer:
    """The device's Modbus/TCP server (``device``: a SimulatedModbusDevice)."""
    rules = WireRules(device.profile, device.defects, unit_id, bits=device.serve_bits)
    context = device.sim_device(unit_id, device.interface_for("tcp"))
    return WireTcpServer(context, rules, address=address, ignore_missing_devices=True)


def serial_server(device: Any, unit_id: int, port: str, baudrate: int, parity: str) -> WireSerialServer:
    """The device's Modbus RTU server on a serial line."""
    from pymodbus import FramerType

    rules = WireRules(device.profile, device.defects, unit_id, LINE_FLOOD_LIMIT, bits=device.serve_bits,
                      flood_window_s=1.0)
    context = device.sim_device(unit_id, device.interface_for("serial"))
    return WireSerialServer(context, rules, framer=FramerType.RTU, port=port, baudrate=baudrate, parity=parity,
                            ignore_missing_devices=True)
