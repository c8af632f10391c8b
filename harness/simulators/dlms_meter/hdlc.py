"""The simulated DLMS meter's HDLC data link (IEC 62056-46) on a serial line: frames, their HCS/FCS, and the
secondary station's procedure (SNRM/UA, I-frames with segmentation both ways, RR, DISC/DM, FRMR).

Written here, independent of ``dlms-cosem``'s ``hdlc`` package (which the driver uses), so that a bug in one
cannot make both agree: the frame check sequence is computed bit by bit from the polynomial, addresses are
decoded from their extension bits. A frame whose FCS or HCS does not check is discarded without an answer
(IEC 62056-46 6.4.4.3: an invalid frame is ignored) — unless the seeded defect ``dlms_hdlc_answers_bad_fcs``.
One connection per client address (its own sequence numbers and association); each APDU is answered by the
same ``DlmsServer`` that serves the TCP wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import time
import tty
from dataclasses import dataclass, field

from harness.simulators.dlms_meter.server import DlmsServer, Session

FLAG = 0x7E
FORMAT_TYPE_3 = 0xA0  # frame format type 3 (the upper nibble); bit 3 is the segmentation bit
SEGMENTED = 0x08
LLC_REQUEST, LLC_RESPONSE = b"\xe6\xe6\x00", b"\xe6\xe7\x00"
SNRM, UA, DISC, DM, FRMR, UI = 0x83, 0x63, 0x43, 0x0F, 0x87, 0x03  # without the P/F bit
POLL = 0x10
DEFAULT_INFO = 128  # maximum information field length both ways when the SNRM negotiates none (6.4.4.4.3.2)
# HDLC setup (class 23) inter_octet_time_out is 25 ms by default; a pty behind the harness's relay thread can hold
# a frame's second half back longer than that on a loaded machine, so the simulator waits 100 ms
INTER_OCTET_S = 0.1
READ_BYTES = 4096
MAX_FRAME = 2048 + 16


class FrameError(ValueError):
    """Bytes that are no valid HDLC frame (length, addresses, HCS or FCS)."""


class AddressError(FrameError):
    """An address field of a length no HDLC address has (3 octets, or more than 4)."""


def crc16(data: bytes) -> int:
    """The HDLC frame check sequence (ISO/IEC 13239, CRC-16 with polynomial x^16+x^12+x^5+1, reflected, preset
    and complemented), bit by bit — no table shared with any other implementation."""
    crc = 0xFFFF
    for byte in data:
        for bit in range(8):
            if (crc ^ (byte >> bit)) & 1:
                crc = (crc >> 1) ^ 0x8408
            else:
                crc >>= 1
    return crc ^ 0xFFFF


def check_bytes(data: bytes) -> bytes:
    """HCS / FCS as sent: least significant octet first."""
    return crc16(data).to_bytes(2, "little")


def encode_address(value: int, physical: int | None = None, *, size: int | None = None) -> bytes:
    """A server address (logical, physical) on 1, 2 or 4 octets, or a client address (``physical`` None, one
    octet): 7 bits per octet, the last octet's bit 0 set."""
    if physical is None and (size or 1) == 1:
        return bytes([(value << 1) | 1])
    physical = physical or 0
    if size is None:
        size = 2 if value <= 0x7F and physical <= 0x7F else 4
    if size == 2:
        return bytes([value << 1, (physical << 1) | 1])
    return bytes([(value >> 7) << 1, (value & 0x7F) << 1, (physical >> 7) << 1, ((physical & 0x7F) << 1) | 1])


def decode_address(octets: bytes) -> tuple[int, int | None]:
    """(logical or client address, physical address or None) of a 1-, 2- or 4-octet address field."""
    v = [b >> 1 for b in octets]
    if len(v) == 1:
        return v[0], None
    if len(v) == 2:
        return v[0], v[1]
    if len(v) == 4:
        return (v[0] << 7) | v[1], (v[2] << 7) | v[3]
    raise AddressError(f"an address of {len(octets)} octets")


def _address_at(buf: bytes, pos: int) -> int:
    """Where the address field starting at ``pos`` ends (its last octet has bit 0 set)."""
    for n in range(4):
        if pos + n >= len(buf):
            raise FrameError("address runs past the frame")
        if buf[pos + n] & 1:
            if n + 1 == 3:
                raise AddressError("an address of 3 octets")
            return pos + n + 1
    raise AddressError("an address longer than 4 octets")


@dataclass(frozen=True)
class Frame:
    """One HDLC frame as received or to be sent (without its flags)."""

    destination: bytes
    source: bytes
    control: int
    info: bytes = b""
    segmented: bool = False

    def encode(self) -> bytes:
        header_len = 2 + len(self.destination) + len(self.source) + 1
        length = header_len + (2 + len(self.info) if self.info else 0) + 2
        fmt = bytes([FORMAT_TYPE_3 | (SEGMENTED if self.segmented else 0) | (length >> 8), length & 0xFF])
        header = fmt + self.destination + self.source + bytes([self.control])
        body = header + (check_bytes(header) + self.info if self.info else b"")
        return bytes([FLAG]) + body + check_bytes(body) + bytes([FLAG])


def parse_frame(content: bytes, *, check_fcs: bool = True) -> Frame:
    """A frame from the octets between its flags; FrameError when it does not check."""
    if len(content) < 7 or content[0] & 0xF0 != FORMAT_TYPE_3:
        raise FrameError("no frame format type 3")
    length = ((content[0] & 0x07) << 8) | content[1]
    if length != len(content):
        raise FrameError(f"format field says {length} octets, the frame has {len(content)}")
    if check_fcs and check_bytes(content[:-2]) != content[-2:]:
        raise FrameError("bad FCS")
    dest_end = _address_at(content, 2)
    src_end = _address_at(content, dest_end)
    if src_end >= len(content) - 2:
        raise FrameError("no control field")
    control = content[src_end]
    info = b""
    rest = content[src_end + 1:-2]
    if rest:
        if len(rest) < 2 or (check_fcs and check_bytes(content[:src_end + 1]) != rest[:2]):
            raise FrameError("bad HCS")
        info = bytes(rest[2:])
    return Frame(bytes(content[2:dest_end]), bytes(content[dest_end:src_end]), control, info,
                 bool(content[0] & SEGMENTED))


class FrameReader:
    """Frames out of a byte stream: a flag, the format field's length, the closing flag. Bytes between frames
    are skipped; a frame that breaks off is dropped after the inter-octet time-out, or as soon as a sound frame
    (its FCS checks) starts inside it — noise on the line that looked like the start of a long frame must not
    swallow the frames that follow it. The caller is told which frames did not check (to ignore them)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.last = 0.0

    def feed(self, data: bytes, now: float) -> list[bytes]:
        """The complete frames' contents (between the flags) in ``data`` and what came before."""
        if self.buf and now - self.last > INTER_OCTET_S:
            self.buf.clear()  # the rest of a frame that never came: dropped (inter-octet time-out)
        self.last = now
        self.buf += data
        out: list[bytes] = []
        while self.buf:
            start = self.buf.find(FLAG)
            if start < 0:
                self.buf.clear()
                break
            del self.buf[:start]
            while len(self.buf) > 1 and self.buf[1] == FLAG:
                del self.buf[0]  # an inter-frame fill of flags, or a closing flag also opening the next frame
            if len(self.buf) < 3:
                break
            length = ((self.buf[1] & 0x07) << 8) | self.buf[2]
            if self.buf[1] & 0xF0 != FORMAT_TYPE_3 or length < 7:
                del self.buf[0]  # no format field after this flag: look for the next one
                continue
            if len(self.buf) < length + 2:
                sound = self._sound_frame_inside()
                if sound is None:
                    break
                del self.buf[:sound]
                continue
            if self.buf[length + 1] != FLAG:
                del self.buf[0]
                continue
            out.append(bytes(self.buf[1:length + 1]))
            del self.buf[:length + 1]  # the closing flag may open the next frame
        return out

    def _sound_frame_inside(self) -> int | None:
        """Where a complete frame whose FCS checks starts after the first octet, if one does."""
        pos = self.buf.find(FLAG, 1)
        while 0 < pos < len(self.buf) - 2:
            length = ((self.buf[pos + 1] & 0x07) << 8) | self.buf[pos + 2]
            end = pos + length + 1
            if self.buf[pos + 1] & 0xF0 == FORMAT_TYPE_3 and length >= 7 and end < len(self.buf) \
                    and self.buf[end] == FLAG and check_bytes(bytes(self.buf[pos + 1:end - 2])) \
                    == self.buf[end - 2:end]:
                return pos
            pos = self.buf.find(FLAG, pos + 1)
        return None


def parse_parameters(info: bytes) -> dict[int, int]:
    """The SNRM/UA parameter negotiation field (format 0x81, group 0x80): parameter id -> value."""
    if len(info) < 3 or info[0] != 0x81 or info[1] != 0x80:
        return {}
    out: dict[int, int] = {}
    pos, end = 3, min(len(info), 3 + info[2])
    while pos + 2 <= end:
        pid, n = info[pos], info[pos + 1]
        out[pid] = int.from_bytes(info[pos + 2:pos + 2 + n], "big")
        pos += 2 + n
    return out


def parameters(max_tx: int, max_rx: int, window_tx: int = 1, window_rx: int = 1) -> bytes:
    body = (bytes([0x05, 2]) + max_tx.to_bytes(2, "big") + bytes([0x06, 2]) + max_rx.to_bytes(2, "big")
            + bytes([0x07, 4]) + window_tx.to_bytes(4, "big") + bytes([0x08, 4]) + window_rx.to_bytes(4, "big"))
    return bytes([0x81, 0x80, len(body)]) + body


@dataclass
class Peer:
    """One client address's connection: sequence numbers, its association, segments in and out."""

    vs: int = 0  # N(S) of the next I-frame we send
    vr: int = 0  # N(S) we expect next
    max_tx: int = DEFAULT_INFO
    max_rx: int = DEFAULT_INFO
    received: bytearray = field(default_factory=bytearray)
    sending: list[bytes] = field(default_factory=list)
    session: Session = field(default_factory=Session)


class HdlcStation:
    """The meter's side of the line: frames in, frames out (the APDUs to and from ``server``)."""

    def __init__(self, server: DlmsServer, physical_address: int | None, defects: frozenset[str] | set[str]) -> None:
        self.server = server
        self.logical = server.map.server_logical_address
        self.physical = physical_address
        self.defects = defects
        self.peers: dict[int, Peer] = {}
        self.hung = False

    def receive(self, content: bytes) -> list[bytes]:
        """The frames (encoded) that answer one received frame's contents; none for a frame that does not
        check, is for another station, or asks for nothing."""
        if self.hung:
            return []
        try:
            frame = parse_frame(content, check_fcs="dlms_hdlc_answers_bad_fcs" not in self.defects)
        except AddressError:
            if "dlms_hdlc_hangs_on_malformed" in self.defects:
                self.hung = True  # the seeded defect: a sound frame with an unreadable address stops the station
            return []
        except FrameError:
            return []
        try:
            logical, physical = decode_address(frame.destination)
            client, client_physical = decode_address(frame.source)
        except FrameError:
            return []
        if client_physical is not None or (logical, physical) != (self.logical, self.physical):
            return []  # for another station (or from no client): not ours to answer
        peer = self.peers.get(client)
        c = frame.control & ~POLL
        if c == SNRM:
            return [self._connect(client, frame)]
        if c == DISC:
            if peer is None:
                return [self._frame(frame, DM | POLL)]
            del self.peers[client]
            return [self._frame(frame, UA | POLL)]
        if peer is None:
            return [self._frame(frame, DM | POLL)]  # disconnected mode: every command but SNRM/DISC gets DM
        if frame.control & 1 == 0:
            return self._information(peer, client, frame)
        if frame.control & 0x0F == 0x01:  # RR: the client asks for the next segment of our answer
            return [self._next_segment(peer, frame)] if peer.sending else [self._rr(peer, frame)]
        return [self._frame(frame, FRMR | POLL)]

    def _frame(self, request: Frame, control: int, info: bytes = b"", segmented: bool = False) -> bytes:
        return Frame(request.source, request.destination, control, info, segmented).encode()

    def _rr(self, peer: Peer, request: Frame) -> bytes:
        return self._frame(request, (peer.vr << 5) | POLL | 0x01)

    def _connect(self, client: int, frame: Frame) -> bytes:
        asked = parse_parameters(frame.info)
        # the client's max receive length is our max transmit one, and the other way round
        peer = Peer(max_tx=min(asked.get(0x06, DEFAULT_INFO), DEFAULT_INFO) or DEFAULT_INFO,
                    max_rx=min(asked.get(0x05, DEFAULT_INFO), DEFAULT_INFO) or DEFAULT_INFO)
        self.peers[client] = peer  # a SNRM on a connection resets it (and ends its association)
        return self._frame(frame, UA | POLL, parameters(peer.max_tx, peer.max_rx))

    def _information(self, peer: Peer, client: int, frame: Frame) -> list[bytes]:
        ns = (frame.control >> 1) & 0x07
        if ns != peer.vr:
            return [self._rr(peer, frame)]  # out of sequence: discarded, our V(R) says which one we wait for
        if len(frame.info) > peer.max_rx:
            return [self._frame(frame, FRMR | POLL)]
        peer.vr = (peer.vr + 1) % 8
        peer.received += frame.info
        if frame.segmented:
            return [self._rr(peer, frame)]
        data, peer.received = bytes(peer.received), bytearray()
        if not data.startswith(LLC_REQUEST):
            return [self._rr(peer, frame)]  # no LLC header: not a DLMS APDU, acknowledged and dropped
        answer = self.server.answer(peer.session, client, data[len(LLC_REQUEST):])
        if answer is None:
            return [self._rr(peer, frame)]
        if answer[:1] == b"\x63":  # RLRE: the association ends, the data link stays
            peer.session = Session()
        out = LLC_RESPONSE + answer
        peer.sending = [out[i:i + peer.max_tx] for i in range(0, len(out), peer.max_tx)]
        return [self._next_segment(peer, frame)]

    def _next_segment(self, peer: Peer, request: Frame) -> bytes:
        info = peer.sending.pop(0)
        control = (peer.vr << 5) | POLL | (peer.vs << 1)
        peer.vs = (peer.vs + 1) % 8
        return self._frame(request, control, info, segmented=bool(peer.sending))


def open_tty(path: str) -> int:
    """The meter's end of the line, raw, non-blocking."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    with contextlib.suppress(termios.error):
        tty.setraw(fd)
    return fd


async def serve_hdlc(station: HdlcStation, path: str) -> asyncio.Task[None]:
    """Serve ``station`` on the serial device ``path`` until the task is cancelled."""
    fd = open_tty(path)
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    reader = FrameReader()

    async def run() -> None:
        try:
            while True:
                await ready.wait()
                ready.clear()
                try:
                    data = os.read(fd, READ_BYTES)
                except BlockingIOError:
                    continue
                except OSError:
                    await asyncio.sleep(0.05)  # EIO: no one holds the other end right now
                    continue
                for content in reader.feed(data, time.monotonic()):
                    for out in station.receive(content):
                        _write_all(fd, out)
        finally:
            loop.remove_reader(fd)
            os.close(fd)

    return asyncio.create_task(run())


def _write_all(fd: int, data: bytes) -> None:
    """All of ``data`` on the line (bounded: a line that takes nothing for a second loses the rest)."""
    deadline = time.monotonic() + 1.0
    while data and time.monotonic() < deadline:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            return
