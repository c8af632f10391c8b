"""The simulated meter's DLMS/COSEM server over the TCP wrapper (IEC 62056-47): associations by client
SAP, GET (normal, with list, with block transfer), SET, release — one connection, one association.

Each request is answered whole before the next is read; a wrapper header for another logical device is
discarded (as the standard says), an APDU the server cannot read gets an exception response, a connection
idle for ``IDLE_TIMEOUT_S`` is closed (the inactivity time-out every meter has).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from harness.config.dlms_map import Association, Authentication
from harness.simulators.dlms_meter import apdu
from harness.simulators.dlms_meter.model import DlmsMeterModel

WRAPPER_VERSION = 1
IDLE_TIMEOUT_S = 120.0
SERVER_CONFORMANCE = apdu.conformance("block_transfer_with_get", "multiple_references", "get", "set")
MECHANISM_IDS = {Authentication.NONE: 0, Authentication.LLS: 1}
MIN_PDU = 12  # a client-max-receive-pdu-size below this is no usable size: taken as no limit
BLOCK_OVERHEAD = 16  # GET-response-with-datablock header and the raw-data length, with room to spare


@dataclass
class Session:
    """One connection's association (None until an AARQ is accepted) and its long GET, if any."""

    association: Association | None = None
    conformance: int = 0
    client_max_pdu: int = 0
    blocks: list[bytes] = field(default_factory=list)
    block_sent: int = 0
    invoke: int = 0


class DlmsServer:
    def __init__(self, model: DlmsMeterModel, passwords: dict[str, str]) -> None:
        self.model = model
        self.map = model.map
        self.passwords = passwords  # the rig's credential name -> LLS password (from the credentials file)
        self.by_sap = {a.client_sap: a for a in self.map.associations.values()}

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

    def _associate(self, session: Session, client_sap: int, body: bytes) -> bytes:
        session.association = None
        try:
            req = apdu.parse_aarq(body)
        except apdu.ApduError:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_NO_REASON)
        if req.context != apdu.LN_NO_CIPHERING and "dlms_any_context_accepted" not in self.model.defects:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_CONTEXT_NOT_SUPPORTED)
        assoc = self.by_sap.get(client_sap)
        if assoc is None:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_NO_REASON)
        if req.mechanism not in (0, 1):
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
        if req.dlms_version < 6:
            return apdu.aare(apdu.REJECTED_PERMANENT, apdu.DIAG_NO_REASON)
        session.association = assoc
        session.conformance = req.conformance & SERVER_CONFORMANCE
        session.client_max_pdu = req.max_pdu if req.max_pdu >= MIN_PDU else 65535
        if "dlms_pdu_size_ignored" in self.model.defects:
            session.client_max_pdu = 65535
        session.blocks = []
        return apdu.aare(apdu.ACCEPTED, apdu.DIAG_NULL, conformance_bits=session.conformance,
                         max_pdu=self.map.max_pdu_size,
                         mechanism=1 if assoc.authentication == Authentication.LLS else None)

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
        if len(whole) <= session.client_max_pdu or not raw:
            return whole
        if not session.conformance & apdu.conformance("block_transfer_with_get"):
            return apdu.get_response_normal(request.invoke, apdu.OTHER_REASON)
        size = max(1, session.client_max_pdu - BLOCK_OVERHEAD)
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

