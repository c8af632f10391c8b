"""The simulated meter's DLMS/COSEM server over the TCP wrapper (IEC 62056-47): associations by client
SAP, GET (normal, with list, with block transfer), SET, release — one connection, one association.

Each request is answered whole before the next is read; a wrapper header for another logical device is
discarded (as the standard says), an APDU the server cannot read gets an exception response, a connection
idle for ``IDLE_TIMEOUT_S`` is closed (the inactivity time-out every meter has).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field

from harness.config.dlms_map import Association, Authentication, SecurityPolicy
from harness.simulators.dlms_meter import apdu
from harness.simulators.dlms_meter import security as sec
from harness.simulators.dlms_meter.model import DlmsMeterModel

WRAPPER_VERSION = 1
IDLE_TIMEOUT_S = 120.0
SERVER_CONFORMANCE = apdu.conformance("block_transfer_with_get", "multiple_references", "get", "set",
                                        "selective_access")
MECHANISM_IDS = {Authentication.NONE: 0, Authentication.LLS: 1, Authentication.HLS_GMAC: apdu.HLS_GMAC}
POLICY_CONTROL = {SecurityPolicy.AUTHENTICATED: sec.AUTHENTICATED, SecurityPolicy.ENCRYPTED: sec.ENCRYPTED,
                  SecurityPolicy.AUTHENTICATED_ENCRYPTED: sec.AUTHENTICATED | sec.ENCRYPTED}
ASSOCIATION_LN, ASSOCIATION_OBIS, REPLY_TO_HLS = 15, bytes([0, 0, 40, 0, 0, 255]), 1
GENERAL_GLO_CIPHERING = 0xDB
CHALLENGE_BYTES = 16
DIAG_AUTH_REQUIRED = 14
# ExceptionResponse service-error (Green Book 9.5): the deciphering and invocation-counter errors
DECIPHERING_ERROR, INVOCATION_COUNTER_ERROR = 5, 6
MIN_PDU = 12  # a client-max-receive-pdu-size below this is no usable size: taken as no limit
BLOCK_OVERHEAD = 16  # GET-response-with-datablock header and the raw-data length, with room to spare
# What ciphering adds around an answer, at most (general-glo-ciphering: tag, system title 1 + 8, length up to 3,
# security control, invocation counter 4, GCM tag 12): the client's max receive PDU bounds the ciphered APDU.
CIPHERING_OVERHEAD = 1 + 9 + 3 + 1 + 4 + 12


@dataclass
class Session:
    """One connection's association (None until an AARQ is accepted) and its long GET, if any."""

    association: Association | None = None
    conformance: int = 0
    client_max_pdu: int = 0
    blocks: list[bytes] = field(default_factory=list)
    block_sent: int = 0
    invoke: int = 0
    keys: sec.Keys | None = None  # a ciphered association's keys, its client's system title, and
    client_title: bytes = b""
    challenge: bytes = b""  # HLS: the StoC sent in the AARE, until the client's reply_to_HLS proves its key
    client_challenge: bytes = b""
    authenticated: bool = True  # False between an HLS AARE and the client's correct reply


class DlmsServer:
    def __init__(self, model: DlmsMeterModel, passwords: dict[str, str],
                 keys: dict[str, sec.Keys] | None = None) -> None:
        self.model = model
        self.map = model.map
        self.passwords = passwords  # the rig's credential name -> LLS password (from the credentials file)
        self.keys = keys or {}  # credential name -> security suite 0 keys (from the credentials file)
        self.by_sap = {a.client_sap: a for a in self.map.associations.values()}
        self.title = bytes.fromhex(self.map.system_title) if self.map.system_title else b"TEKSIM00"
        self.counter = 0  # the meter's own invocation counter: every protected APDU it sends takes the next

    async def serve(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._connection, host, port, reuse_address=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session()
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(8), IDLE_TIMEOUT_S)
                version, source, dest, size = (int.from_bytes(header[i:i + 2], "big") for i in range(0, 8, 2))
                body = await asyncio.wait_for(reader.readexactly(size), IDLE_TIMEOUT_S)
                if version != WRAPPER_VERSION or dest != self.map.server_logical_address:
                    continue  # not for this logical device: discarded, never answered
                answer = self.answer(session, source, body)
                if answer is None:
                    break
                writer.write(WRAPPER_VERSION.to_bytes(2, "big") + dest.to_bytes(2, "big") + source.to_bytes(2, "big")
                             + len(answer).to_bytes(2, "big") + answer)
                await writer.drain()
                if answer[0] == apdu.RLRE:
                    session = Session()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # ---- one APDU in, one out ----------------------------------------------------------------------
    def answer(self, session: Session, client_sap: int, body: bytes) -> bytes | None:
        if not body:
            return apdu.exception_response()
        tag = body[0]
        try:
            if tag == apdu.AARQ:
                return self._associate(session, client_sap, body)
            if tag == apdu.RLRQ:
                return apdu.rlre()
            if session.association is None:
                return apdu.exception_response()
            if session.keys is not None:
                return self._ciphered(session, body)
            return self._plain(session, body)
        except apdu.ApduError:
            return apdu.exception_response(1, 2)

    def _plain(self, session: Session, body: bytes) -> bytes:
        """An xDLMS request in the clear on an association that allows it (or whose keys were ignored)."""
        tag = body[0]
        try:
            if not session.authenticated:
                return self._reply_to_hls(session, apdu.parse_action(body)) if tag == apdu.ACTION_REQUEST \
                    else apdu.exception_response()
            if tag == apdu.GET_REQUEST:
                return self._get(session, apdu.parse_get(body))
            if tag == apdu.SET_REQUEST:
                request = apdu.parse_set(body)
                may = set(session.association.may_set)
                if "dlms_public_client_sets_clock" in self.model.defects \
                        and session.association.authentication == Authentication.NONE:
                    may.add("clock")
                return apdu.set_response_normal(request.invoke, self.model.set(request.attribute, request.data, may))
        except apdu.ApduError:
            return apdu.exception_response(1, 2)
        return apdu.exception_response(1, 2)  # a service this meter does not offer

    def _ciphered(self, session: Session, body: bytes) -> bytes:
        """A request on a ciphered association: general-glo- or glo-ciphered, from this client, with a fresh
        invocation counter; answered under the same protection. A plain request is refused."""
        assert session.keys is not None
        if body[0] in (apdu.GET_REQUEST, apdu.SET_REQUEST, apdu.ACTION_REQUEST):
            if "dlms_plain_apdu_accepted" in self.model.defects:
                return self._plain(session, body)
            return apdu.exception_response(1, 2)  # service-not-allowed: this association takes protected APDUs only
        try:
            if body[0] == GENERAL_GLO_CIPHERING:
                title, pos = _octets(body, 1)
                payload, end = _octets(body, pos)
                if end != len(body) or title != session.client_title:
                    raise sec.CipherError("general-glo-ciphering from another system title")
                general = True
            elif body[0] in sec.GLO_REQUESTS:
                _, payload = sec.unwrap(body)
                general = False
            else:
                return apdu.exception_response(1, 2)
            control, counter, plain = sec.unprotect(payload, session.client_title, session.keys)
        except (sec.CipherError, apdu.ApduError):
            return apdu.exception_response(1, DECIPHERING_ERROR)
        policy = POLICY_CONTROL[session.association.security] if session.association else 0
        if control & 0xF0 != policy:
            return apdu.exception_response(1, DECIPHERING_ERROR)
        if not self._fresh(session.association, counter):
            return apdu.exception_response(1, INVOCATION_COUNTER_ERROR)
        if not plain or sec.GLO_OF.get(plain[0]) is None or (not general and sec.GLO_OF[plain[0]] != body[0]):
            return apdu.exception_response(1, 2)
        keys = session.keys
        return self._protect(keys, policy, self._plain(session, plain), general)

    def _protect(self, keys: sec.Keys, control: int, answer: bytes, general: bool) -> bytes:
        self.counter += 1
        payload = sec.protect(control, self.title, self.counter, keys, answer)
        if general:
            return bytes([GENERAL_GLO_CIPHERING, len(self.title)]) + self.title + apdu.length(len(payload)) + payload
        glo = sec.GLO_OF.get(answer[0])
        return sec.wrap(glo, payload) if glo is not None else answer  # an exception response goes in the clear

    def _reply_to_hls(self, session: Session, request: apdu.ActionRequest) -> bytes:
        """Pass 3 and 4 of HLS-GMAC: the client's f(StoC) must be its GMAC of our challenge; we answer f(CtoS)."""
        assert session.keys is not None
        if (request.class_id, request.obis, request.method) != (ASSOCIATION_LN, ASSOCIATION_OBIS, REPLY_TO_HLS):
            return apdu.action_response(request.invoke, apdu.READ_WRITE_DENIED)
        answer = request.data[2:] if request.data[:1] == b"\x09" else b""
        good = sec.gmac_verifies(answer, session.client_title, session.keys, session.challenge)
        if not good and "dlms_hls_accepts_bad_tag" not in self.model.defects:
            session.association = None  # the association is not established
            return apdu.action_response(request.invoke, apdu.OTHER_REASON)
        session.authenticated = True
        self.counter += 1
        reply = sec.gmac(self.title, self.counter, session.keys, session.client_challenge)
        return apdu.action_response(request.invoke, apdu.SUCCESS, bytes([0x09, len(reply)]) + reply)

    def _associate(self, session: Session, client_sap: int, body: bytes) -> bytes:
        session.association = None
        try:
            req = apdu.parse_aarq(body)
        except apdu.ApduError:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_NO_REASON)
        assoc = self.by_sap.get(client_sap)
        ciphered = assoc is not None and assoc.security != SecurityPolicy.NONE
        offered = apdu.LN_WITH_CIPHERING if ciphered else apdu.LN_NO_CIPHERING
        if req.context != offered and "dlms_any_context_accepted" not in self.model.defects:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_CONTEXT_NOT_SUPPORTED)
        if assoc is None:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_NO_REASON)
        offered_mechanisms = {0, 1} | ({apdu.HLS_GMAC} if any(
            a.authentication == Authentication.HLS_GMAC for a in self.map.associations.values()) else set())
        if req.mechanism not in offered_mechanisms:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_MECHANISM_NOT_RECOGNISED)
        wanted = MECHANISM_IDS[assoc.authentication]
        if req.mechanism != wanted:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_MECHANISM_REQUIRED if wanted
                             else apdu.DIAG_MECHANISM_NOT_RECOGNISED)
        if assoc.authentication == Authentication.LLS:
            expected = self.passwords.get(assoc.credential or "")
            given = req.password or b""
            good = expected is not None and given == expected.encode()
            if not good and not ("dlms_lls_any_password" in self.model.defects and given):
                return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_AUTH_FAILURE, mechanism=1)
        keys = self.keys.get(assoc.credential or "") if ciphered else None
        if ciphered:
            if keys is None or req.calling_title is None or len(req.calling_title) != sec.TITLE_LENGTH:
                return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_NO_REASON)
            refused = self._decipher_initiate(req, keys, assoc)
            if refused is not None:
                return refused
        if req.dlms_version < 6:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_NO_REASON)
        if assoc.authentication == Authentication.HLS_GMAC and not 8 <= len(req.password or b"") <= 64:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_AUTH_FAILURE, mechanism=apdu.HLS_GMAC)
        session.association = assoc
        session.conformance = req.conformance & SERVER_CONFORMANCE
        session.client_max_pdu = req.max_pdu if req.max_pdu >= MIN_PDU else 65535
        if "dlms_pdu_size_ignored" in self.model.defects:
            session.client_max_pdu = 65535
        session.blocks = []
        session.keys, session.client_title = keys, req.calling_title or b""
        if not ciphered:
            return apdu.aare(apdu.ACCEPTED, apdu.DIAG_NULL, conformance_bits=session.conformance,
                             max_pdu=self.map.max_pdu_size,
                             mechanism=1 if assoc.authentication == Authentication.LLS else None)
        assert keys is not None
        hls = assoc.authentication == Authentication.HLS_GMAC
        session.authenticated = not hls
        session.client_challenge = req.password or b""
        session.challenge = os.urandom(CHALLENGE_BYTES) if hls else b""
        self.counter += 1
        initiate = sec.protect(POLICY_CONTROL[assoc.security], self.title, self.counter, keys,
                               apdu.initiate_response(session.conformance, self.map.max_pdu_size))
        return apdu.aare(apdu.ACCEPTED, DIAG_AUTH_REQUIRED if hls else apdu.DIAG_NULL, context=offered,
                         mechanism=MECHANISM_IDS[assoc.authentication] or None, responding_title=self.title,
                         challenge=session.challenge if hls else None,
                         user_information=bytes([apdu.GLO_INITIATE_RESPONSE]) + apdu.length(len(initiate)) + initiate)

    def _decipher_initiate(self, req: apdu.AssociationRequest, keys: sec.Keys, assoc: Association) -> bytes | None:
        """Reads the glo-InitiateRequest of a ciphered AARQ into ``req``; the AARE refusing it, if it must be."""
        assert req.calling_title is not None
        ini = req.user_information
        try:
            if ini[:1] != bytes([apdu.GLO_INITIATE_REQUEST]):
                raise sec.CipherError("a ciphered association's InitiateRequest is ciphered")
            _, payload = sec.unwrap(ini)
            _, counter, plain = sec.unprotect(payload, req.calling_title, keys)
            apdu.parse_initiate(plain, req)
        except (sec.CipherError, apdu.ApduError, IndexError):
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_NO_REASON)
        if not self._fresh(assoc, counter):
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_NO_REASON)
        return None

    def _fresh(self, assoc: Association | None, counter: int) -> bool:
        """Whether a protected APDU's invocation counter is above the last accepted from its client (the
        clients' counters are kept in NVM, over associations and power cuts; the defect checks none)."""
        if "dlms_invocation_counter_reuse" in self.model.defects:
            return True
        return assoc is not None and self.model.accept_invocation_counter(assoc.client_sap, counter)

    def _get(self, session: Session, request: apdu.GetRequest) -> bytes:
        if request.kind == apdu.NEXT:
            return self._next_block(session, request)
        session.blocks = []
        self.model.begin_get()
        if request.kind == apdu.NORMAL:
            result = self.model.get(request.attributes[0])
            whole = apdu.get_response_normal(request.invoke, result)
            raw = result if isinstance(result, bytes) else b""
        else:
            results = [self.model.get(a) for a in request.attributes]
            whole = apdu.get_response_with_list(request.invoke, results)
            raw = whole[3:]
        room = session.client_max_pdu - (CIPHERING_OVERHEAD if session.keys is not None else 0)
        if len(whole) <= room or not raw:
            return whole
        if not session.conformance & apdu.conformance("block_transfer_with_get"):
            return apdu.get_response_normal(request.invoke, apdu.OTHER_REASON)
        size = max(1, room - BLOCK_OVERHEAD)
        session.blocks = [raw[i:i + size] for i in range(0, len(raw), size)]
        session.block_sent, session.invoke = 0, request.invoke
        return self._send_block(session)

    def _next_block(self, session: Session, request: apdu.GetRequest) -> bytes:
        if not session.blocks:
            return apdu.get_response_block_error(request.invoke, request.block, apdu.NO_LONG_GET)
        if request.block != session.block_sent:
            session.blocks = []
            return apdu.get_response_block_error(request.invoke, request.block, apdu.DATA_BLOCK_UNAVAILABLE)
        return self._send_block(session)

    def _send_block(self, session: Session) -> bytes:
        chunk = session.blocks[session.block_sent]
        session.block_sent += 1
        last = session.block_sent == len(session.blocks)
        if last and "dlms_block_transfer_truncates" in self.model.defects:
            chunk = chunk[:-1]
        answer = apdu.get_response_block(session.invoke, last, session.block_sent, chunk)
        if last:
            session.blocks = []
        return answer



def _octets(buf: bytes, pos: int) -> tuple[bytes, int]:
    """An A-XDR length-prefixed octet string at ``pos``: its bytes and where it ends."""
    from harness.simulators.dlms_meter.axdr import AxdrError, read_length
    try:
        n, start = read_length(buf, pos)
    except AxdrError as exc:
        raise apdu.ApduError(str(exc)) from None
    if start + n > len(buf):
        raise apdu.ApduError("octet string runs past the end")
    return bytes(buf[start:start + n]), start + n
