"""One DLMS/COSEM association, on ``dlms-cosem``'s sans-io connection, over a carrier: the TCP wrapper
(IEC 62056-47, ``WrapperCarrier`` below) or HDLC on a serial line (IEC 62056-46, ``dlms_hdlc.HdlcCarrier``).

The library builds and parses the APDUs and keeps the association's state; the carrier owns the socket or
the line, so that every exchange has a bounded timeout, and every APDU (and HDLC frame), both ways, goes to
the transcript — with the LLS password cut out of the AARQ before anything is written (the transcript's
redactor sees text, and the password travels as bytes inside a hex dump).
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from harness.devices.api import DeviceError, DeviceRefused, DeviceTimeout, DeviceUnreachable
from harness.devices.transcript import Transcript
from harness.redaction import marker
from harness.reporting.texts import Msg


@functools.cache
def _quiet_dlms_cosem() -> None:
    """dlms-cosem logs every APDU through structlog to stdout; the transcript says it, once, redacted. Done when
    the first link is made (before any DlmsConnection exists), not at import: structlog brings rich (~0.1 s CPU),
    which every certify run paid while collecting the DLMS checks, DLMS device or not."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


WRAPPER_VERSION = 1
RECV_BYTES = 4096
CLIENT_SYSTEM_TITLE = b"TEKHARNS"  # the harness's own 8-byte system title (IV of what it ciphers)
# role -> the next invocation counter of our protected APDUs, for every DlmsDevice of this process: a meter
# refuses a counter it has seen from our system title (Green Book 9.2.7.4), and the DUT's main Device, a
# check's own association and the availability soak's Device reach the same meter at once. Every link continues
# from the highest counter used so far, so the sequence only rises; over runs, ``DlmsDevice`` first reads the
# meter's own record of the last counter it accepted (the profile's ``invocation_counter`` object) and continues above.
INVOCATION_COUNTERS: dict[str, int] = {}
COUNTERS_LOCK = threading.Lock()
AARE_DIAGNOSTICS = {0: Msg("null"), 1: Msg("no reason given"), 2: Msg("application context name not supported"),
                    11: Msg("authentication mechanism name not recognised"),
                    12: Msg("authentication mechanism name required"), 13: Msg("authentication failure"),
                    14: Msg("authentication required")}


class AssociationRefused(DeviceRefused):
    """The meter answered the AARQ with an AARE that rejects it; ``code`` is the acse-service-user diagnostic."""


class DlmsLink:
    """A socket and one association on it, as one client SAP with its authentication."""

    def __init__(self, dut: str, where: tuple[str, int], server_address: int, client_sap: int, role: str,
                 password: bytes | None, max_pdu: int, timeout: float, transcript: Transcript | None,
                 receive_pdu: int | None = None, keys: tuple[bytes, bytes] | None = None, hls: bool = False,
                 counters: dict[str, int] | None = None, carrier: Any = None) -> None:
        _quiet_dlms_cosem()
        self.dut, self.where, self.server_address, self.client_sap = dut, where, server_address, client_sap
        self.role, self.timeout, self.transcript = role, timeout, transcript
        self.receive_pdu = receive_pdu  # proposed in the AARQ instead of max_pdu (a small one forces blocks)
        self.exchanges: Counter[str] = Counter()  # op -> how many, e.g. "get-next": the blocks asked for
        self.longest_answer = 0  # bytes of the longest APDU received after the AARE (the negotiated PDU bounds it)
        self._password = password
        self._hidden = (password.hex(), marker(password).decode()) if password else None
        self._max_pdu = max_pdu
        self._keys = keys  # (global unicast encryption key, authentication key): a ciphered association's
        self.hls = hls  # HLS-GMAC (mechanism 5): the AARE is followed by the client's reply to the meter's challenge
        self.counters = counters if counters is not None else INVOCATION_COUNTERS
        self._last_plain: bytes | None = None  # the last APDU the library deciphered
        self.last_sent = b""  # the last APDU sent as it went on the wire (a replay check sends it again)
        # the TCP wrapper unless the device gives another carrier (connect, exchange, close, abort, is_open)
        self._carrier = carrier if carrier is not None else WrapperCarrier(where, server_address, client_sap, timeout)
        self._opened = False
        if hasattr(self._carrier, "bind"):
            self._carrier.bind(self.record_frames)
        self.connection: Any = None
        self.connection_start = 0  # the invocation counter this association's counting began at (set by open)

    # ---- association -------------------------------------------------------------------------------
    def open(self, aarq: Callable[[Any], Any] | None = None,
             hls_reply: Callable[[bytes], bytes] | None = None) -> Any:
        """Connect and associate; the AARE. AssociationRefused when the meter rejects the AARQ. ``aarq`` builds
        another AARQ than the library's from the connection (negative checks: another context, mechanism)."""
        from dlms_cosem import enumerations
        from dlms_cosem.connection import DlmsConnection
        from dlms_cosem.protocol import acse
        from dlms_cosem.security import (
            HighLevelSecurityGmacAuthentication,
            LowLevelSecurityAuthentication,
            NoSecurityAuthentication,
        )

        auth: Any = LowLevelSecurityAuthentication(secret=self._password) if self._password is not None \
            else NoSecurityAuthentication()
        if self.hls:
            auth = HighLevelSecurityGmacAuthentication(challenge_length=16)
        ek, ak = self._keys if self._keys is not None else (None, None)
        self.connection = DlmsConnection(authentication=auth, client_system_title=CLIENT_SYSTEM_TITLE,
                                         max_pdu_size=self._max_pdu, use_block_transfer=True,
                                         global_encryption_key=ek, global_authentication_key=ak,
                                         client_invocation_counter=max([1, *self.counters.values()]))
        self.connection_start = self.connection.client_invocation_counter  # where this association's counting began
        if self._keys is not None:  # keep what the library deciphers, for the transcript (it cannot re-encode it)
            decrypt = self.connection.decrypt

            def deciphered(ciphered_text: bytes) -> bytes:
                self._last_plain = bytes(decrypt(ciphered_text))
                return self._last_plain

            self.connection.decrypt = deciphered
        try:
            self._carrier.connect()
        except OSError as exc:
            self.close()
            raise DeviceUnreachable(Msg("{dut}: cannot connect to {where}:{where2} ({name})", dut=self.dut,
                                        where=self.where[0], where2=self.where[1], name=type(exc).__name__)) from None
        except DeviceUnreachable as exc:
            self.close()
            raise DeviceUnreachable(Msg("{dut}: {exc}", dut=self.dut, exc=exc)) from None
        self._opened = True
        request = aarq(self.connection) if aarq is not None else self.connection.get_aarq()
        if self.receive_pdu is not None:
            request.user_information.content.client_max_receive_pdu_size = self.receive_pdu
        aare = self.request(request, "associate")
        if not isinstance(aare, acse.ApplicationAssociationResponse):
            self.close()
            raise DeviceError(Msg("{dut}: the AARQ as {role} was answered with {name}", dut=self.dut, role=self.role,
                                  name=type(aare).__name__))
        if aare.result is not enumerations.AssociationResult.ACCEPTED:
            diag = aare.result_source_diagnostics
            code = int(getattr(diag, "value", diag) or 0)
            self.close()
            raise AssociationRefused(Msg("{dut}: association as {role} (client SAP {client}) rejected: {diagnostic}",
                                         dut=self.dut, role=self.role, client=self.client_sap,
                                         diagnostic=AARE_DIAGNOSTICS.get(code) or Msg("diagnostic {code}", code=code)),
                                     code)
        if self.hls:
            self._reply_to_hls(hls_reply)
        return aare

    def _reply_to_hls(self, hls_reply: Callable[[bytes], bytes] | None) -> None:
        """Pass 3 and 4 of HLS-GMAC: our GMAC of the meter's challenge (``hls_reply`` may falsify it, for the
        negative check), then the meter's GMAC of ours, which must verify. AssociationRefused otherwise."""
        from dlms_cosem import cosem, dlms_data, enumerations, state
        from dlms_cosem.protocol import xdlms

        if self.connection.state.current_state != state.SHOULD_SEND_HLS_SEVER_CHALLENGE_RESULT:
            self.close()
            raise AssociationRefused(Msg("{dut}: association as {role}: the meter did not challenge (no HLS-GMAC)",
                                         dut=self.dut, role=self.role), 14)
        reply = self.connection.authentication.hls_generate_reply_data(self.connection)
        if hls_reply is not None:
            reply = hls_reply(reply)
        answer = self.request(xdlms.ActionRequestNormal(
            cosem_method=cosem.CosemMethod(enumerations.CosemInterface.ASSOCIATION_LN, cosem.Obis(0, 0, 40, 0, 0), 1),
            data=dlms_data.OctetStringData(reply).to_bytes()), "hls-reply")
        if self.connection is None or self.connection.state.current_state != state.READY:
            status = getattr(answer, "status", None)
            self.close()
            raise AssociationRefused(Msg("{dut}: association as {role} (client SAP {client}) rejected at the HLS "
                                         "reply ({answer})", dut=self.dut, role=self.role, client=self.client_sap,
                                         answer=getattr(status, "name", type(answer).__name__)), 13)

    def close(self) -> None:
        """The carrier closed in order (HDLC: DISC) and the association forgotten."""
        if self._opened:
            self._opened = False
            self._carrier.close()
        self.connection = None

    def _abort(self) -> None:
        """After a failed exchange: the carrier dropped without a word (a link that stopped answering would
        only make a DISC wait out another timeout)."""
        self._opened = False
        self._carrier.abort()
        self.connection = None

    @property
    def is_open(self) -> bool:
        return self._opened and self._carrier.is_open and self.connection is not None

    # ---- one APDU each way -------------------------------------------------------------------------
    def request(self, event: Any, op: str) -> Any:
        """Send one xDLMS/ACSE APDU, return the parsed answer. DeviceTimeout (link closed) on silence."""
        assert self._opened and self.connection is not None
        plain_out = event.to_bytes() if self._keys is not None else None
        with COUNTERS_LOCK:  # links open at once draw from one rising sequence (INVOCATION_COUNTERS)
            if self._keys is not None:
                self.connection.client_invocation_counter = max([self.connection.client_invocation_counter,
                                                                 *self.counters.values()])
            out = self.connection.send(event)
            self.counters[self.role] = self.connection.client_invocation_counter
        self.last_sent = out
        t_sent = time.time()
        try:
            body = self._carrier.exchange(out)
        except (OSError, DeviceError) as exc:
            t_received = time.time()
            self._record(op, out, None, t_sent, t_received, error=type(exc).__name__)
            self._abort()
            raise DeviceTimeout(Msg("{dut}: no answer to {op} as {role} within {timeout:g} s ({name})", dut=self.dut,
                                    op=op, role=self.role, timeout=self.timeout, name=type(exc).__name__)) from None
        t_received = time.time()
        self.exchanges[op] += 1
        if op != "associate":
            self.longest_answer = max(self.longest_answer, len(body))
        self.last_times = (t_sent, t_received)
        self.connection.receive_data(body)
        self._last_plain = None
        try:
            answer = self.connection.next_event()
        except Exception as exc:  # the library could not read the answer: the meter's fault, said plainly
            self._record(op, out, body, t_sent, t_received, apdu_out_plain=self._plain(plain_out, out))
            self._abort()
            raise DeviceError(Msg("{dut}: unreadable answer to {op}: {name}: {exc}", dut=self.dut, op=op,
                                  name=type(exc).__name__, exc=exc)) from None
        self._record(op, out, body, t_sent, t_received, apdu_out_plain=self._plain(plain_out, out),
                     apdu_in_plain=self._plain(self._last_plain, body))
        return answer

    def send_raw(self, apdu: bytes, op: str) -> bytes:
        """One APDU exactly as given (a plain request on a ciphered association, a replayed one) and the answer's
        bytes, not read by the library (whose state it would upset). DeviceTimeout on silence."""
        assert self._opened
        t_sent = time.time()
        try:
            body = self._carrier.exchange(apdu)
        except (OSError, DeviceError) as exc:
            self._record(op, apdu, None, t_sent, time.time(), error=type(exc).__name__)
            self._abort()
            raise DeviceTimeout(Msg("{dut}: no answer to {op} as {role} within {timeout:g} s", dut=self.dut, op=op,
                                    role=self.role, timeout=self.timeout)) from None
        self._record(op, apdu, body, t_sent, time.time())
        return body

    def _plain(self, plain: bytes | None, wire: bytes) -> str | None:
        """The deciphered form beside the ciphered one in the transcript (None when they are the same)."""
        return self._shown(plain) if plain is not None and plain != wire else None

    def _shown(self, raw: bytes) -> str:
        text = raw.hex()
        if self._hidden:
            text = text.replace(*self._hidden)
        return text

    def _record(self, op: str, sent: bytes, received: bytes | None, t_sent: float, t_received: float,
                **extra: Any) -> None:
        if self.transcript is not None:
            extra = {k: v for k, v in extra.items() if v is not None}
            frames = getattr(self._carrier, "frames", None)
            if frames:
                extra["hdlc_frames"] = self.shown_frames(op, frames)
            self.transcript.record(self.dut, op=op, association=self.role, client_sap=self.client_sap,
                                   latency_ms=round((t_received - t_sent) * 1000, 3), apdu_out=self._shown(sent),
                                   apdu_in=self._shown(received) if received is not None else None, **extra)

    def shown_frames(self, op: str, frames: list[tuple[str, bytes]]) -> list[str]:
        """HDLC frames for the transcript ("out:7ea0…" / "in:…"), the LLS password cut out; an AARQ segmented
        over frames may split the password where no replacement finds it: its frames' bytes are left out."""
        if self._hidden and op == "associate" and sum(1 for d, _ in frames if d == "out") > 1:
            return [f"{d}:<redacted: a segment of an AARQ with a password>" if d == "out" else f"{d}:{self._shown(f)}"
                    for d, f in frames]
        return [f"{d}:{self._shown(f)}" for d, f in frames]

    def record_frames(self, op: str, frames: list[tuple[str, bytes]], error: str | None) -> None:
        """A data-link exchange of the HDLC carrier (connect, disconnect) in the transcript."""
        if self.transcript is not None:
            self.transcript.record(self.dut, op=op, association=self.role, client_sap=self.client_sap,
                                   hdlc_frames=self.shown_frames(op, frames), **({"error": error} if error else {}))


class WrapperCarrier:
    """The TCP wrapper (IEC 62056-47): a socket, an 8-byte header before each APDU."""

    def __init__(self, where: tuple[str, int], server_address: int, client_sap: int, timeout: float) -> None:
        self.where, self.server_address, self.client_sap, self.timeout = where, server_address, client_sap, timeout
        self._sock: socket.socket | None = None
        self._received = bytearray()  # read from the socket, not yet taken (a header and its APDU in one recv)

    def connect(self) -> None:
        self._sock = socket.create_connection(self.where, timeout=self.timeout)
        self._sock.settimeout(self.timeout)

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        self._received.clear()
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    abort = close

    def exchange(self, apdu: bytes) -> bytes:
        assert self._sock is not None
        self._sock.sendall(self._wrap(apdu))
        return self._read_answer()

    def _wrap(self, apdu: bytes) -> bytes:
        return (WRAPPER_VERSION.to_bytes(2, "big") + self.client_sap.to_bytes(2, "big")
                + self.server_address.to_bytes(2, "big") + len(apdu).to_bytes(2, "big") + apdu)

    def _read_answer(self) -> bytes:
        """The next wrapper PDU addressed to us (others are skipped), within the timeout overall."""
        deadline = time.monotonic() + self.timeout
        for _ in range(16):
            header = self._read(8, deadline)
            version, source, dest, size = (int.from_bytes(header[i:i + 2], "big") for i in range(0, 8, 2))
            body = self._read(size, deadline)
            if version == WRAPPER_VERSION and source == self.server_address and dest == self.client_sap:
                return body
        raise DeviceError(Msg("no wrapper PDU addressed to this client"))

    def _read(self, n: int, deadline: float) -> bytes:
        """``n`` bytes, each recv bounded by the link's timeout and the whole by ``deadline`` (checked between
        recvs: an answer is late by at most one timeout, and a quick one costs no timeout changes)."""
        assert self._sock is not None
        first = True
        while len(self._received) < n:
            if not first and time.monotonic() > deadline:
                raise TimeoutError("answer incomplete")
            first = False
            chunk = self._sock.recv(max(RECV_BYTES, n - len(self._received)))
            if not chunk:
                raise ConnectionResetError("closed by the meter")
            self._received += chunk
        data = bytes(self._received[:n])
        del self._received[:n]
        return data
