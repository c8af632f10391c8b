"""The simulated DLMS meter's own reading and writing of the APDUs it serves (IEC 62056-5-3, Green Book 9).

Hand-written BER for the ACSE APDUs (AARQ, AARE, RLRQ, RLRE) and A-XDR for the xDLMS ones (GET, SET,
exception), independent of ``dlms-cosem`` for the reason ``axdr`` gives. Only what a server must read and
answer; anything else is a ``ApduError`` the server answers with an exception response.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.simulators.dlms_meter.axdr import AxdrError, Data, decode, length, read_length

AARQ, AARE, RLRQ, RLRE = 0x60, 0x61, 0x62, 0x63
GET_REQUEST, SET_REQUEST, ACTION_REQUEST = 0xC0, 0xC1, 0xC3
GET_RESPONSE, SET_RESPONSE, EXCEPTION_RESPONSE = 0xC4, 0xC5, 0xD8
NORMAL, NEXT, WITH_LIST = 1, 2, 3

CONTEXT_PREFIX = bytes.fromhex("60857405080101")[:-1]  # joint-iso-ccitt(2) country(16) ... application-context(1)
LN_NO_CIPHERING = bytes.fromhex("60857405080101")
LN_WITH_CIPHERING = bytes.fromhex("60857405080103")
ACTION_RESPONSE = 0xC7
GLO_INITIATE_REQUEST, GLO_INITIATE_RESPONSE = 0x21, 0x28
MECHANISM_PREFIX = bytes.fromhex("60857405080200")[:-1]  # ... mechanism-name(2), then the mechanism id
MECHANISMS = {0: "none", 1: "lls", 2: "hls", 5: "hls_gmac"}
HLS_GMAC = 5

# Data-Access-Result (Green Book 9.3): the ones a meter gives
SUCCESS, READ_WRITE_DENIED, OBJECT_UNDEFINED, OBJECT_CLASS_INCONSISTENT = 0, 3, 4, 9
OBJECT_UNAVAILABLE, TYPE_UNMATCHED, DATA_BLOCK_UNAVAILABLE, NO_LONG_GET = 11, 12, 14, 16
OTHER_REASON = 250

# AARE result and acse-service-user diagnostics
ACCEPTED, REJECTED_PERMANENT = 0, 1
DIAG_NULL, DIAG_NO_REASON, DIAG_CONTEXT_NOT_SUPPORTED = 0, 1, 2
DIAG_MECHANISM_NOT_RECOGNISED, DIAG_MECHANISM_REQUIRED, DIAG_AUTH_FAILURE = 11, 12, 13

# Conformance block bits (Green Book 9.4.6.1), bit 0 the most significant of the 24
CONFORMANCE_BITS = {"general_protection": 1, "general_block_transfer": 2, "attribute0_with_set": 8,
                    "priority_management": 9, "attribute0_with_get": 10, "block_transfer_with_get": 11,
                    "block_transfer_with_set": 12, "block_transfer_with_action": 13, "multiple_references": 14,
                    "data_notification": 16, "access": 17, "get": 19, "set": 20, "selective_access": 21,
                    "event_notification": 22, "action": 23}


class ApduError(ValueError):
    """An APDU this server cannot read."""


def conformance(*names: str) -> int:
    value = 0
    for name in names:
        value |= 1 << (23 - CONFORMANCE_BITS[name])
    return value


@dataclass
class AssociationRequest:
    """What the server needs of an AARQ."""

    context: bytes | None = None
    mechanism: int = 0
    calling_title: bytes | None = None
    password: bytes | None = None
    conformance: int = 0
    max_pdu: int = 0
    dlms_version: int = 0
    user_information: bytes = b""  # the InitiateRequest, or the glo-InitiateRequest holding it ciphered
    fields: list[int] = field(default_factory=list)


def _tlv(buf: bytes, pos: int) -> tuple[int, bytes, int]:
    if pos >= len(buf):
        raise ApduError("element runs past the end")
    tag = buf[pos]
    n, start = read_length(buf, pos + 1)
    if start + n > len(buf):
        raise ApduError(f"element 0x{tag:02X} runs past the end")
    return tag, bytes(buf[start:start + n]), start + n


def parse_aarq(apdu: bytes) -> AssociationRequest:
    try:
        tag, body, end = _tlv(apdu, 0)
    except AxdrError as exc:
        raise ApduError(str(exc)) from None
    if tag != AARQ or end != len(apdu):
        raise ApduError("not a whole AARQ")
    req = AssociationRequest()
    pos = 0
    try:
        while pos < len(body):
            tag, value, pos = _tlv(body, pos)
            req.fields.append(tag)
            if tag == 0xA1:  # application-context-name: OBJECT IDENTIFIER
                inner_tag, oid, _ = _tlv(value, 0)
                req.context = oid if inner_tag == 0x06 else None
            elif tag == 0xA6:  # calling-AP-title: OCTET STRING
                req.calling_title = _tlv(value, 0)[1]
            elif tag == 0x8B:  # mechanism-name (implicit OBJECT IDENTIFIER)
                if not value.startswith(MECHANISM_PREFIX) or len(value) != len(MECHANISM_PREFIX) + 1:
                    req.mechanism = -1
                else:
                    req.mechanism = value[-1]
            elif tag == 0xAC:  # calling-authentication-value: CHOICE charstring [0]
                req.password = _tlv(value, 0)[1]
            elif tag == 0xBE:  # user-information: OCTET STRING holding the xDLMS InitiateRequest
                req.user_information = _tlv(value, 0)[1]
                if req.user_information[:1] != bytes([GLO_INITIATE_REQUEST]):
                    parse_initiate(req.user_information, req)
    except AxdrError as exc:
        raise ApduError(str(exc)) from None
    return req


def parse_initiate(ini: bytes, req: AssociationRequest) -> None:
    """Reads the (deciphered) InitiateRequest's DLMS version, conformance block and max PDU into ``req``."""
    if not ini or ini[0] != 0x01:
        raise ApduError("user-information holds no InitiateRequest")
    pos = 1
    if ini[pos]:  # dedicated-key present
        n = ini[pos + 1]
        pos += 2 + n
    else:
        pos += 1
    pos += 2 if ini[pos] else 1  # response-allowed (DEFAULT TRUE): flag, then its value when present
    pos += 2 if ini[pos] else 1  # proposed-quality-of-service
    req.dlms_version = ini[pos]
    pos += 1
    if ini[pos:pos + 3] != b"\x5f\x1f\x04":
        raise ApduError("InitiateRequest has no conformance block")
    req.conformance = int.from_bytes(ini[pos + 4:pos + 7], "big")
    req.max_pdu = int.from_bytes(ini[pos + 7:pos + 9], "big")


def initiate_response(conformance_bits: int, max_pdu: int) -> bytes:
    return (bytes([0x08, 0x00, 0x06, 0x5F, 0x1F, 0x04, 0x00]) + conformance_bits.to_bytes(3, "big")
            + max_pdu.to_bytes(2, "big") + b"\x00\x07")


def aare(result: int, diagnostic: int, *, conformance_bits: int = 0, max_pdu: int = 0,
         context: bytes = LN_NO_CIPHERING, mechanism: int | None = None, responding_title: bytes | None = None,
         challenge: bytes | None = None, user_information: bytes | None = None) -> bytes:
    """The AARE; with result accepted it carries the InitiateResponse (negotiated conformance, max PDU), or
    ``user_information`` (the glo-InitiateResponse of a ciphered association); an HLS one also the meter's
    system title and its challenge (StoC)."""
    body = bytes([0xA1]) + length(len(context) + 2) + bytes([0x06, len(context)]) + context
    body += bytes([0xA2, 0x03, 0x02, 0x01, result])
    body += bytes([0xA3, 0x05, 0xA1, 0x03, 0x02, 0x01, diagnostic])
    if responding_title is not None:
        body += bytes([0xA4, len(responding_title) + 2, 0x04, len(responding_title)]) + responding_title
    if mechanism is not None:
        body += bytes([0x88, 0x02, 0x07, 0x80, 0x89, 0x07]) + MECHANISM_PREFIX + bytes([mechanism])
    if challenge is not None:
        body += bytes([0xAA, len(challenge) + 2, 0x80, len(challenge)]) + challenge
    if result == ACCEPTED:
        initiate = user_information if user_information is not None else initiate_response(conformance_bits, max_pdu)
        body += bytes([0xBE]) + length(len(initiate) + 2) + bytes([0x04]) + length(len(initiate)) + initiate
    return bytes([AARE]) + length(len(body)) + body


def rlre() -> bytes:
    return bytes([RLRE, 0x03, 0x80, 0x01, 0x00])  # reason: normal


def exception_response(state_error: int = 1, service_error: int = 2) -> bytes:
    """ExceptionResponse: by default service-not-allowed / service-unsupported."""
    return bytes([EXCEPTION_RESPONSE, state_error, service_error])


@dataclass(frozen=True)
class Attribute:
    """A cosem-attribute-descriptor: class id, logical name (OBIS, 6 bytes), attribute id; with the
    selective-access-descriptor of a GET when it carries one (selector, access parameters)."""

    class_id: int
    obis: bytes
    attribute: int
    selection: tuple[int, Data] | None = None

    @property
    def obis_text(self) -> str:
        return ".".join(str(b) for b in self.obis)


def _descriptor(buf: bytes, pos: int, selective: bool = False) -> tuple[Attribute, int]:
    if pos + 9 > len(buf):
        raise ApduError("attribute descriptor runs past the end")
    attr = Attribute(int.from_bytes(buf[pos:pos + 2], "big"), bytes(buf[pos + 2:pos + 8]),
                     int.from_bytes(buf[pos + 8:pos + 9], "big", signed=True))
    pos += 9
    if pos >= len(buf):
        raise ApduError("access-selection flag missing")
    if not buf[pos]:
        return attr, pos + 1
    if not selective:
        raise ApduError("selective access in a request that takes none")
    if pos + 1 >= len(buf):
        raise ApduError("access selector missing")
    try:
        parameters, end = decode(buf, pos + 2)
    except AxdrError as exc:
        raise ApduError(f"access parameters: {exc}") from None
    return Attribute(attr.class_id, attr.obis, attr.attribute, (buf[pos + 1], parameters)), end


@dataclass(frozen=True)
class GetRequest:
    kind: int
    invoke: int
    attributes: tuple[Attribute, ...] = ()
    block: int = 0


def parse_get(apdu: bytes) -> GetRequest:
    if len(apdu) < 3 or apdu[0] != GET_REQUEST:
        raise ApduError("not a GET request")
    kind, invoke = apdu[1], apdu[2]
    if kind == NORMAL:
        attr, end = _descriptor(apdu, 3, selective=True)
        if end != len(apdu):
            raise ApduError("bytes after the GET request")
        return GetRequest(kind, invoke, (attr,))
    if kind == NEXT:
        if len(apdu) != 7:
            raise ApduError("GET-request-next is 7 bytes")
        return GetRequest(kind, invoke, block=int.from_bytes(apdu[3:7], "big"))
    if kind == WITH_LIST:
        try:
            count, pos = read_length(apdu, 3)
        except AxdrError as exc:
            raise ApduError(str(exc)) from None
        attrs = []
        for _ in range(count):
            attr, pos = _descriptor(apdu, pos, selective=True)
            attrs.append(attr)
        if pos != len(apdu):
            raise ApduError("bytes after the GET-with-list request")
        return GetRequest(kind, invoke, tuple(attrs))
    raise ApduError(f"GET request choice {kind} is not supported")


@dataclass(frozen=True)
class SetRequest:
    invoke: int
    attribute: Attribute
    data: bytes  # the A-XDR Data as sent


def parse_set(apdu: bytes) -> SetRequest:
    if len(apdu) < 3 or apdu[0] != SET_REQUEST or apdu[1] != NORMAL:
        raise ApduError("only SET-request-normal is supported")
    attr, pos = _descriptor(apdu, 3)
    try:
        _, end = decode(apdu, pos)
    except AxdrError as exc:
        raise ApduError(f"SET data: {exc}") from None
    if end != len(apdu):
        raise ApduError("bytes after the SET data")
    return SetRequest(apdu[2], attr, bytes(apdu[pos:]))


Result = bytes | int  # an encoded Data, or a Data-Access-Result code


def get_response_normal(invoke: int, result: Result) -> bytes:
    head = bytes([GET_RESPONSE, NORMAL, invoke])
    return head + (b"\x00" + result if isinstance(result, bytes) else bytes([0x01, result]))


def get_response_with_list(invoke: int, results: list[Result]) -> bytes:
    body = b"".join(b"\x00" + r if isinstance(r, bytes) else bytes([0x01, r]) for r in results)
    return bytes([GET_RESPONSE, WITH_LIST, invoke]) + length(len(results)) + body


def get_response_block(invoke: int, last: bool, block: int, raw: bytes) -> bytes:
    return (bytes([GET_RESPONSE, NEXT, invoke, 0xFF if last else 0x00]) + block.to_bytes(4, "big") + b"\x00"
            + length(len(raw)) + raw)


def get_response_block_error(invoke: int, block: int, result: int) -> bytes:
    return bytes([GET_RESPONSE, NEXT, invoke, 0xFF]) + block.to_bytes(4, "big") + bytes([0x01, result])


def set_response_normal(invoke: int, result: int) -> bytes:
    return bytes([SET_RESPONSE, NORMAL, invoke, result])


@dataclass(frozen=True)
class ActionRequest:
    invoke: int
    class_id: int
    obis: bytes
    method: int
    data: bytes  # the A-XDR Data of the method's parameter, b"" without one


def parse_action(apdu: bytes) -> ActionRequest:
    if len(apdu) < 13 or apdu[0] != ACTION_REQUEST or apdu[1] != NORMAL:
        raise ApduError("only ACTION-request-normal is supported")
    request = ActionRequest(apdu[2], int.from_bytes(apdu[3:5], "big"), bytes(apdu[5:11]), apdu[11],
                            bytes(apdu[13:]) if apdu[12] else b"")
    if request.data:
        try:
            _, end = decode(request.data, 0)
        except AxdrError as exc:
            raise ApduError(f"ACTION data: {exc}") from None
        if end != len(request.data):
            raise ApduError("bytes after the ACTION data")
    return request


def action_response(invoke: int, result: int, data: bytes | None = None) -> bytes:
    """ACTION-response-normal; ``data`` (an encoded Data) as its return parameters when given."""
    head = bytes([ACTION_RESPONSE, NORMAL, invoke, result])
    return head + (b"\x01\x00" + data if data is not None else b"\x00")
