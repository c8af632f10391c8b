"""DLMS/COSEM over HDLC on a serial line (IEC 62056-46): the driver's data link, on ``dlms-cosem``'s frames.

A ``DlmsLink`` sends its APDUs through a carrier; over the TCP wrapper that is a socket, here it is an HDLC
connection on the rig's serial line: SNRM/UA to connect, the APDU behind the LLC header in I-frames (segmented
at the maximum information length, the meter acknowledging each segment with RR), the answer's segments
asked for with RR, DISC/UA to end. ``dlms-cosem`` builds and parses the frames and keeps the sequence numbers;
this module owns the line, so that every wait is bounded by the rig's timeout and every frame both ways is
handed to the transcript.

One line, several client addresses: the device's links share one ``HdlcLine`` (one exchange at a time), and
a new connection of a client address displaces the link that held it before (the meter reset that
connection when it saw the SNRM), so that link reconnects instead of talking on a connection that is gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from harness.devices.api import DeviceError, DeviceTimeout, DeviceUnreachable

FLAG = 0x7E
LLC_REQUEST, LLC_RESPONSE = b"\xe6\xe6\x00", b"\xe6\xe7\x00"
MAX_SEGMENTS = 1024  # an answer in more frames than this is a meter that never clears the segmentation bit
# control fields without the P/F bit, as the driver classifies what it receives before dlms-cosem parses it
UA, DM, FRMR = 0x63, 0x0F, 0x87


class LinkDown(DeviceError):
    """The meter said the HDLC connection is not there (DM, FRMR) or broke the procedure: reconnect."""


def control_of(frame: bytes) -> int | None:
    """The control field of a flagged frame (None when its addresses do not end where a frame can hold them)."""
    pos = 3
    for _ in range(2):  # destination, then source: 1, 2 or 4 octets, the last with bit 0 set
        for n in range(4):
            if pos + n >= len(frame) - 3:
                return None
            if frame[pos + n] & 1:
                pos += n + 1
                break
        else:
            return None
    return frame[pos] if pos < len(frame) - 3 else None


class HdlcLine:
    """The harness's end of the DUT's serial line, shared by the device's HDLC connections."""

    def __init__(self, port: str, serial: Any) -> None:
        self.port_name, self.serial = port, serial
        self.lock = threading.RLock()  # one exchange at a time on a line
        self.holders: dict[int, HdlcCarrier] = {}  # client address -> the carrier connected as it
        self._port: Any = None
        self._pending = bytearray()

    def _open(self) -> Any:
        if self._port is None:
            import serial

            s = self.serial
            try:
                self._port = serial.serial_for_url(self.port_name, baudrate=s.baudrate, parity=s.parity,
                                                   stopbits=s.stopbits, bytesize=s.bytesize, timeout=0.01)
            except (OSError, ValueError, serial.SerialException) as exc:
                raise DeviceUnreachable(f"cannot open the serial line {self.port_name} ({exc})") from None
        return self._port

    def write(self, frame: bytes, *, fresh: bool = False) -> None:
        """``frame`` on the line; ``fresh``: what is still unread from earlier exchanges is dropped first."""
        port = self._open()
        try:
            if fresh:
                self._pending.clear()
                port.reset_input_buffer()
            port.write(frame)
            port.flush()
        except OSError as exc:
            self.close()
            raise DeviceUnreachable(f"the serial line {self.port_name} failed ({exc})") from None

    def read_frame(self, deadline: float) -> bytes | None:
        """The next whole frame (flags included) by its format field's length, or None at ``deadline``."""
        port = self._open()
        while True:
            frame = self._take()
            if frame is not None:
                return frame
            if time.monotonic() >= deadline:
                return None
            try:
                chunk = port.read(max(1, port.in_waiting))
            except OSError as exc:
                self.close()
                raise DeviceUnreachable(f"the serial line {self.port_name} failed ({exc})") from None
            self._pending += chunk

    def _take(self) -> bytes | None:
        buf = self._pending
        while True:
            start = buf.find(FLAG)
            if start < 0:
                buf.clear()
                return None
            del buf[:start]
            while len(buf) > 1 and buf[1] == FLAG:
                del buf[0]
            if len(buf) < 3:
                return None
            size = ((buf[1] & 0x07) << 8) | buf[2]
            if buf[1] & 0xF0 != 0xA0 or size < 7:
                del buf[0]
                continue
            if len(buf) < size + 2:
                return None
            if buf[size + 1] != FLAG:
                del buf[0]
                continue
            frame = bytes(buf[:size + 2])
            del buf[:size + 1]
            return frame

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = None


class HdlcCarrier:
    """One HDLC connection as one client address; what a ``DlmsLink`` sends its APDUs through."""

    max_info = 128  # octets of information field per I-frame sent: the default both ways when the SNRM negotiates none

    def __init__(self, line: HdlcLine, server_logical: int, server_physical: int | None, client_sap: int,
                 timeout: float, record: Callable[[str, list[tuple[str, bytes]], str | None], None] | None = None
                 ) -> None:
        from dlms_cosem.hdlc.address import HdlcAddress

        wide = server_physical is not None and (server_logical > 0x7F or server_physical > 0x7F)
        self.server = HdlcAddress(server_logical, server_physical, "server", extended_addressing=wide)
        self.client = HdlcAddress(client_sap, None, "client")
        self.line, self.client_sap, self.timeout = line, client_sap, timeout
        self._record = record or (lambda op, frames, error: None)
        self.frames: list[tuple[str, bytes]] = []  # the last exchange's frames: ("out" | "in", bytes)
        self.connection: Any = None

    def bind(self, record: Callable[[str, list[tuple[str, bytes]], str | None], None]) -> None:
        """Where the connect and disconnect frames go (the link's transcript)."""
        self._record = record

    @property
    def is_open(self) -> bool:
        return self.connection is not None and self.line.holders.get(self.client_sap) is self

    # ---- connection ---------------------------------------------------------------------------------
    def connect(self) -> None:
        """SNRM, and the meter's UA. DeviceUnreachable when it does not come."""
        from dlms_cosem.hdlc import frames
        from dlms_cosem.hdlc.connection import HdlcConnection

        with self.line.lock:
            self.line.holders[self.client_sap] = self  # the SNRM resets this client's connection in the meter
            self.connection = HdlcConnection(self.server, self.client, max_data_size=self.max_info)
            self.frames = []
            try:
                self._send(frames.SetNormalResponseModeFrame(self.server, self.client), fresh=True)
                self._receive(frames.UnNumberedAcknowledgmentFrame)
            except DeviceError as exc:
                self._record("hdlc-connect", self.frames, type(exc).__name__)
                self.drop()
                raise DeviceUnreachable(f"no HDLC connection as client {self.client_sap} ({exc})") from None
            self._record("hdlc-connect", self.frames, None)

    def close(self) -> None:
        """DISC, and the meter's UA (or DM), awaited for the timeout at most; the connection is gone either way."""
        from dlms_cosem.hdlc import frames

        if not self.is_open:
            self.connection = None
            return
        with self.line.lock:
            self.frames = []
            error = None
            try:
                self._send(frames.DisconnectFrame(self.server, self.client), fresh=True)
                self._receive(frames.UnNumberedAcknowledgmentFrame)
            except DeviceError as exc:
                error = type(exc).__name__  # DM is an answer too: the meter had already dropped us
            self._record("hdlc-disconnect", self.frames, error)
            self.drop()

    def abort(self) -> None:
        """Given up on after a failed exchange: forgotten without a DISC (the meter's next SNRM resets it)."""
        self.drop()

    def drop(self) -> None:
        if self.line.holders.get(self.client_sap) is self:
            del self.line.holders[self.client_sap]
        self.connection = None

    # ---- one APDU each way --------------------------------------------------------------------------
    def exchange(self, apdu: bytes) -> bytes:
        """``apdu`` behind the LLC header in as many I-frames as it takes, the answer's APDU reassembled.
        DeviceTimeout on silence, LinkDown when the meter says the connection is gone."""
        from dlms_cosem.hdlc import frames

        if not self.is_open:
            raise LinkDown(f"the HDLC connection as client {self.client_sap} was taken over by another link")
        with self.line.lock:
            self.frames = []
            conn = self.connection
            data = LLC_REQUEST + apdu
            size = conn.max_data_size
            pieces = [data[i:i + size] for i in range(0, len(data), size)]
            for n, piece in enumerate(pieces):
                more = n < len(pieces) - 1
                self._send(frames.InformationFrame(self.server, self.client, piece,
                                                   send_sequence_number=conn.server_ssn,
                                                   receive_sequence_number=conn.server_rsn, segmented=more,
                                                   final=True), fresh=n == 0)
                if more:
                    self._receive(frames.ReceiveReadyFrame)
            answer = bytearray()
            for _ in range(MAX_SEGMENTS):
                got = self._receive(frames.InformationFrame)
                answer += got.payload
                if not got.segmented:
                    break
                self._send(frames.ReceiveReadyFrame(self.server, self.client,
                                                    receive_sequence_number=conn.server_rsn))
            else:
                raise LinkDown(f"an answer did not end within {MAX_SEGMENTS} segments")
        if not answer.startswith(LLC_RESPONSE):
            raise LinkDown(f"an answer without the LLC response header ({bytes(answer[:3]).hex()})")
        return bytes(answer[len(LLC_RESPONSE):])

    def _send(self, frame: Any, fresh: bool = False) -> None:
        from dlms_cosem.hdlc.exceptions import LocalProtocolError

        try:
            raw = self.connection.send(frame)
        except LocalProtocolError as exc:
            raise LinkDown(f"HDLC procedure: {exc}") from None
        self.frames.append(("out", raw))
        self.line.write(raw, fresh=fresh)

    def _receive(self, expected: type) -> Any:
        """The next frame for us that dlms-cosem reads as ``expected`` (frames for other clients are skipped).
        DeviceTimeout when none comes within the timeout; LinkDown on DM, FRMR or another frame than asked."""
        from dlms_cosem.hdlc import frames
        from dlms_cosem.hdlc.exceptions import HdlcException, LocalProtocolError

        deadline = time.monotonic() + self.timeout
        while True:
            raw = self.line.read_frame(deadline)
            if raw is None:
                raise DeviceTimeout(f"no HDLC frame from the meter to client {self.client_sap} within "
                                    f"{self.timeout:g} s")
            if raw[3:4] != self.client.to_bytes():
                continue  # another client's answer (late, from a link given up on): not ours
            self.frames.append(("in", raw))
            control = control_of(raw)
            if control is None:
                raise LinkDown(f"a frame whose addresses cannot be read: {raw.hex()}")
            if control & ~0x10 in (DM, FRMR):
                raise LinkDown(f"the meter answered {'DM' if control & ~0x10 == DM else 'FRMR'}: the HDLC "
                               f"connection as client {self.client_sap} is gone")
            kind = frames.InformationFrame if control & 1 == 0 else frames.ReceiveReadyFrame \
                if control & 0x0F == 0x01 else frames.UnNumberedAcknowledgmentFrame if control & ~0x10 == UA else None
            if kind is not expected:
                raise LinkDown(f"the meter answered control field {control:#04x} where {expected.__name__} was "
                               "awaited")
            # parsed here rather than through HdlcConnection.next_event, whose search for the closing flag takes
            # a 0x7E inside the FCS for it (the frame is already delimited, by its format field's length)
            try:
                event = kind.from_bytes(raw)
                self.connection.state.process_frame(event)
                if kind is frames.InformationFrame:
                    self.connection.handle_sequence_numbers(event.send_sequence_number,
                                                            event.receive_sequence_number, response=True)
            except (HdlcException, LocalProtocolError, ValueError) as exc:
                raise LinkDown(f"HDLC procedure: {type(exc).__name__}: {exc} in {raw.hex()}") from None
            return event


class RawHdlc:
    """Frames built one by one and sent outside any link's procedure (negative checks, fuzzing): dlms-cosem builds
    them, the device's line carries them. A SNRM or DISC sent here resets the meter's connection of that client
    address, so the link holding it (if any) is displaced and reconnects when next used."""

    def __init__(self, line: HdlcLine, server_logical: int, server_physical: int | None, client_sap: int,
                 record: Callable[..., None] | None = None) -> None:
        from dlms_cosem.hdlc.address import HdlcAddress

        wide = server_physical is not None and (server_logical > 0x7F or server_physical > 0x7F)
        self.server = HdlcAddress(server_logical, server_physical, "server", extended_addressing=wide)
        self.client = HdlcAddress(client_sap, None, "client")
        self.line, self.client_sap = line, client_sap
        self.record = record  # the transcript's record(**fields), if the caller keeps one

    def snrm(self) -> bytes:
        from dlms_cosem.hdlc import frames

        return frames.SetNormalResponseModeFrame(self.server, self.client).to_bytes()

    def disc(self) -> bytes:
        from dlms_cosem.hdlc import frames

        return frames.DisconnectFrame(self.server, self.client).to_bytes()

    def information(self, apdu: bytes, ns: int = 0, nr: int = 0, segmented: bool = False) -> bytes:
        """An I-frame carrying ``apdu`` behind the LLC request header."""
        from dlms_cosem.hdlc import frames

        return frames.InformationFrame(self.server, self.client, LLC_REQUEST + apdu, send_sequence_number=ns,
                                       receive_sequence_number=nr, segmented=segmented, final=True).to_bytes()

    def send(self, frame: bytes, wait_s: float, op: str = "hdlc-raw") -> bytes | None:
        """``frame`` on the line; the first frame that comes back to this client within ``wait_s`` (None: none).
        Both go to the transcript (these frames carry no secret: no password, no key)."""
        with self.line.lock:
            holder = self.line.holders.pop(self.client_sap, None)
            if holder is not None:
                holder.connection = None
            t0 = time.monotonic()
            self.line.write(frame, fresh=True)
            deadline = t0 + wait_s
            while True:
                raw = self.line.read_frame(deadline)
                if raw is None or raw[3:4] == self.client.to_bytes():
                    break
        if self.record is not None:
            self.record(op=op, client_sap=self.client_sap, latency_ms=round((time.monotonic() - t0) * 1000, 3),
                        hdlc_frames=[f"out:{frame.hex()}", *([f"in:{raw.hex()}"] if raw is not None else [])])
        return raw


def fcs_of(content: bytes) -> bytes:
    """The HDLC check sequence of ``content`` (dlms-cosem's CRC), as sent."""
    from dlms_cosem.crc import CRCCCITT

    return CRCCCITT().calculate_for(content)


def with_bad_fcs(frame: bytes) -> bytes:
    """``frame`` with its FCS's last octet changed (every bit): a frame no receiver may take."""
    return frame[:-2] + bytes([frame[-2] ^ 0xFF]) + frame[-1:]


def with_bad_hcs(frame: bytes) -> bytes:
    """An I-frame with its header check sequence changed and the FCS made right again over it: only the HCS is
    wrong."""
    pos = 3
    for _ in range(2):
        while not frame[pos] & 1:
            pos += 1
        pos += 1
    control_end = pos + 1  # the HCS follows the control field
    body = bytearray(frame[1:-3])
    body[control_end - 1] ^= 0xFF
    return bytes([FLAG]) + bytes(body) + fcs_of(bytes(body)) + bytes([FLAG])


__all__ = ["HdlcCarrier", "HdlcLine", "LinkDown", "RawHdlc", "control_of", "fcs_of", "with_bad_fcs", "with_bad_hcs"]
