"""Malformed DLMS/COSEM frames, reproducibly: HDLC frames on a serial line (IEC 62056-46) and APDUs in the TCP
wrapper (IEC 62056-47), each case drawn from the run's seed and built by hand here (scapy knows neither).

HDLC families: frames with a bad FCS or HCS, frames cut before their end, a format field whose length
disagrees with the frame, frames longer than the negotiated information field, address fields of 3 or 5+
octets and unknown control fields *with a sound FCS* (so that they reach the station's parser, not only its
check), I-frames out of sequence, a segmented I-frame never finished, I-frames with malformed APDUs behind a
SNRM, line noise. Wrapper families: a header with another version, a length field that disagrees with the
bytes, an empty APDU, unknown tags, AARQs and GET requests cut short or with lengths past their end, random
bytes behind a sound tag.

Non-destructive by construction: no case carries a SET or ACTION request (or their ciphered forms), whose
malformed variants a meter might still carry out — a mutated tag that lands on one is turned into a GET.
Every case goes to the public client's address (the harness's own reads use another association).
"""

from __future__ import annotations

import random

from harness.conformance.wire.modbus_fuzz import Case

FLAG = 0x7E
LLC_REQUEST = b"\xe6\xe6\x00"
SNRM, DISC, UI = 0x93, 0x53, 0x13
GET_REQUEST, AARQ = 0xC0, 0x60
# SET / ACTION requests, plain, glo- and ded-ciphered (Green Book 9.5): never sent by the fuzzer
ALTERING_TAGS = frozenset({0xC1, 0xC3, 0xC9, 0xCB, 0xD1, 0xD3, 0xD9, 0xDB, 0xDC, 0x05, 0x06})
WRAPPER_VERSION = 1
HDLC_FAMILIES = ("bad_fcs", "bad_hcs", "cut_frame", "length_mismatch", "overlong", "odd_address", "odd_control",
                 "out_of_sequence", "unfinished_segment", "bad_apdu", "noise")
WRAPPER_FAMILIES = ("bad_version", "length_mismatch", "empty_apdu", "bad_apdu", "bad_apdu")


def _crc(data: bytes) -> bytes:
    """The HDLC FCS/HCS (CRC-16/X.25), low octet first (the fuzzer's own, so that a sound check sequence is
    sound independently of both the driver's library and the simulator)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return (crc ^ 0xFFFF).to_bytes(2, "little")


def _address(value: int, physical: int | None) -> bytes:
    if physical is None:
        return bytes([(value << 1) | 1])
    if value <= 0x7F and physical <= 0x7F:
        return bytes([value << 1, (physical << 1) | 1])
    return bytes([(value >> 7) << 1, (value & 0x7F) << 1, (physical >> 7) << 1, ((physical & 0x7F) << 1) | 1])


def hdlc_frame(dest: bytes, src: bytes, control: int, info: bytes = b"", segmented: bool = False,
               length: int | None = None) -> bytes:
    """A frame of format type 3 with sound HCS and FCS (``length``: what the format field says, if not the truth)."""
    size = 2 + len(dest) + len(src) + 1 + (2 + len(info) if info else 0) + 2
    size = size if length is None else length
    header = bytes([0xA0 | (0x08 if segmented else 0) | ((size >> 8) & 0x07), size & 0xFF]) + dest + src \
        + bytes([control])
    body = header + (_crc(header) + info if info else b"")
    return bytes([FLAG]) + body + _crc(body) + bytes([FLAG])


def hdlc_reply_length(head: bytes) -> int | None:
    """How long an HDLC reply is from its first octets (flag, format field), if known yet."""
    if len(head) < 3:
        return None
    if head[0] != FLAG:
        return len(head)  # not a frame: whatever came is all there is
    return (((head[1] & 0x07) << 8) | head[2]) + 2


def hdlc_answered(reply: bytes | None) -> bool:
    """Any sound frame back (UA to a SNRM): the line's station is serving."""
    if not reply or len(reply) < 9 or reply[0] != FLAG:
        return False
    size = ((reply[1] & 0x07) << 8) | reply[2]
    return len(reply) >= size + 2 and _crc(reply[1:size - 1]) == reply[size - 1:size + 1]


def _safe_apdu(apdu: bytes) -> bytes:
    return bytes([GET_REQUEST]) + apdu[1:] if apdu and apdu[0] in ALTERING_TAGS else apdu


def _apdus(rng: random.Random) -> tuple[str, bytes]:
    """A malformed xDLMS/ACSE APDU: (what, bytes)."""
    get = bytes.fromhex("c001c100030100010800ff0200")  # GET-request-normal of A+ total's value
    aarq = PROBE_AARQ
    kind = rng.randrange(6)
    if kind == 0:
        cut = rng.randint(1, len(aarq) - 1)
        return f"an AARQ cut to {cut} of {len(aarq)} octets", aarq[:cut]
    if kind == 1:
        cut = rng.randint(1, len(get) - 1)
        return f"a GET request cut to {cut} of {len(get)} octets", get[:cut]
    if kind == 2:
        bad = bytearray(aarq)
        bad[1] = rng.choice((0x7F, 0x80, 0x81, 0xFF))
        return f"an AARQ whose length octet says {bad[1]:#04x}", bytes(bad)
    if kind == 3:
        tag = rng.choice([t for t in range(256) if t not in ALTERING_TAGS])
        body = rng.randbytes(rng.randint(0, 24))
        return f"tag {tag:#04x} and {len(body)} random octets", bytes([tag]) + body
    if kind == 4:
        bad = bytearray(get)
        pos = rng.randrange(1, len(bad))
        bad[pos] = rng.randrange(256)
        return f"a GET request with octet {pos} set to {bad[pos]:#04x}", _safe_apdu(bytes(bad))
    return "a GET request with 200 octets after its end", get + rng.randbytes(200)


def hdlc_cases(seed: int, count: int, server_logical: int, server_physical: int | None, client: int,
               max_info: int = 128) -> list[Case]:
    """``count`` malformed HDLC cases for the station at (``server_logical``, ``server_physical``), from the
    public client ``client``; the same for the same seed."""
    dest, src = _address(server_logical, server_physical), _address(client, None)
    snrm = hdlc_frame(dest, src, SNRM)
    cases = []
    for index in range(count):
        rng = random.Random(f"{seed}:dlms-hdlc:{index}")
        family = HDLC_FAMILIES[index % len(HDLC_FAMILIES)]
        what, apdu = _apdus(rng)
        info = LLC_REQUEST + apdu
        iframe = hdlc_frame(dest, src, 0x10, info)
        if family == "bad_fcs":
            sound = rng.choice((snrm, iframe))
            frame = sound[:-3] + bytes([sound[-3] ^ (1 << rng.randrange(8))]) + sound[-2:]
            what = "a SNRM with a bad FCS" if sound is snrm else f"an I-frame ({what}) with a bad FCS"
        elif family == "bad_hcs":
            hcs = 3 + len(dest) + len(src) + 1
            body = bytearray(iframe[1:-3])
            body[hcs - 1] ^= 1 << rng.randrange(8)
            frame = bytes([FLAG]) + bytes(body) + _crc(bytes(body)) + bytes([FLAG])
            what = f"an I-frame ({what}) with a bad HCS, sound FCS"
        elif family == "cut_frame":
            cut = rng.randint(1, len(iframe) - 1)
            frame, what = iframe[:cut], f"an I-frame cut to {cut} of {len(iframe)} octets"
        elif family == "length_mismatch":
            true = len(iframe) - 2
            said = rng.choice((true - 3, true + 5, 7, 2047))
            frame = hdlc_frame(dest, src, 0x10, info, length=said)
            what = f"an I-frame whose format field says {said} octets (it has {true}), sound FCS"
        elif family == "overlong":
            size = rng.randint(max_info + 1, max_info + 200)
            frame = snrm + hdlc_frame(dest, src, 0x10, LLC_REQUEST + bytes([GET_REQUEST]) + rng.randbytes(size - 1))
            what = f"a SNRM, then an I-frame with {size + 3} octets of information (max {max_info})"
        elif family == "odd_address":
            n = rng.choice((3, 5, 6))
            odd = bytes([rng.randrange(128) << 1 for _ in range(n - 1)]) + bytes([(rng.randrange(128) << 1) | 1])
            frame = hdlc_frame(odd, src, SNRM) if rng.random() < 0.5 else hdlc_frame(dest, odd, SNRM)
            what = f"a SNRM with an address field of {n} octets, sound FCS"
        elif family == "odd_control":
            control = rng.choice((0x01 | (rng.randrange(8) << 5) | 0x0C, 0x17, 0x3F, 0xEF, 0xFF, UI))
            frame, what = hdlc_frame(dest, src, control, rng.randbytes(rng.randint(0, 8))), \
                f"a frame with control field {control:#04x}, sound FCS"
        elif family == "out_of_sequence":
            ns = rng.randint(1, 7)
            frame = snrm + hdlc_frame(dest, src, 0x10 | (ns << 1), info)
            what = f"a SNRM, then an I-frame with N(S) = {ns} (0 expected) carrying {what}"
        elif family == "unfinished_segment":
            frame = snrm + hdlc_frame(dest, src, 0x10, info, segmented=True)
            what = "a SNRM, then the first segment of an I-frame whose rest never comes"
        elif family == "bad_apdu":
            frame = snrm + iframe
            what = f"a SNRM, then an I-frame carrying {what}"
        else:
            frame = rng.randbytes(rng.randint(1, 64))
            what = f"{len(frame)} octets of line noise"
        cases.append(Case(index, family, what, frame))
    return cases


# a public client's AARQ (LN referencing, no ciphering, no authentication): what "served" means for a new
# connection (an AARE comes back, accepting or not)
PROBE_AARQ = bytes.fromhex("601da109060760857405080101be10040e01000000065f1f040000181dffff")


def wrapper(apdu: bytes, source: int, dest: int, version: int = WRAPPER_VERSION, length: int | None = None) -> bytes:
    """A TCP wrapper PDU (IEC 62056-47): version, source and destination wPort, length, APDU."""
    size = len(apdu) if length is None else length
    return (version.to_bytes(2, "big") + source.to_bytes(2, "big") + dest.to_bytes(2, "big")
            + (size & 0xFFFF).to_bytes(2, "big") + apdu)


def wrapper_length(head: bytes) -> int | None:
    """How long a wrapper PDU is from its header, if known yet."""
    return 8 + int.from_bytes(head[6:8], "big") if len(head) >= 8 else None


def wrapper_cases(seed: int, count: int, server: int, client: int) -> list[Case]:
    """``count`` malformed wrapper cases for logical device ``server`` from the public client ``client``."""
    cases = []
    for index in range(count):
        rng = random.Random(f"{seed}:dlms-wrapper:{index}")
        family = WRAPPER_FAMILIES[index % len(WRAPPER_FAMILIES)]
        what, apdu = _apdus(rng)
        if family == "bad_version":
            version = rng.choice((0, 2, 0xFFFF))
            frame, what = wrapper(apdu, client, server, version=version), f"version {version} carrying {what}"
        elif family == "length_mismatch":
            said = rng.choice((len(apdu) + 1, len(apdu) + 100, max(0, len(apdu) - 1), 0xFFFF))
            frame, what = wrapper(apdu, client, server, length=said), \
                f"a length field of {said} for {len(apdu)} octets: {what}"
        elif family == "empty_apdu":
            frame, what = wrapper(b"", client, server), "an empty APDU"
        else:
            frame = wrapper(apdu, client, server)
        cases.append(Case(index, family, what, frame))
    return cases


__all__ = ["ALTERING_TAGS", "hdlc_answered", "hdlc_cases", "hdlc_frame", "hdlc_reply_length", "wrapper",
           "wrapper_cases", "wrapper_length"]
