"""Malformed OPC UA binary (UA-TCP, OPC 10000-6 §7.1) messages for the robustness campaign: HEL, OPN and MSG
garbage, bounded in size, reproducible from a seed. Same ``Case`` as the Modbus generator, so one campaign
runner sends both.

Families: a Hello whose buffer sizes, version or endpoint URL lie (0, tiny, huge, a URL length past the
message or negative); a message header whose size lies (below the header, past the bytes, 4 GiB); an OPN
before any Hello, or after a sound Hello with a security policy URI and certificate lengths that lie; a MSG
on a secure channel nobody opened; an unknown message type; bytes cut from a sound Hello.
"""

from __future__ import annotations

import random
import struct

from harness.conformance.wire.modbus_fuzz import Case

FAMILIES = (("hello_fields", 25), ("header_size", 20), ("open_garbage", 20), ("message_garbage", 15),
            ("unknown_type", 10), ("truncated_hello", 10))
MAX_BODY = 480  # every case stays small: robustness, not a bandwidth test
ODD_SIZES = (0, 1, 7, 8, 1024, 8191, 65535, 0x7FFFFFFF, 0xFFFFFFFF)


def _message(kind: bytes, body: bytes, chunk: bytes = b"F", size: int | None = None) -> bytes:
    return kind + chunk + struct.pack("<I", 8 + len(body) if size is None else size) + body


def _string(text: bytes, length: int | None = None) -> bytes:
    return struct.pack("<i", len(text) if length is None else length) + text


def hello(url: str, rng: random.Random | None = None, *, lie: bool = False) -> bytes:
    """A Hello (sound unless ``lie``: then one field from ``rng`` is wrong)."""
    fields = [0, 65536, 65536, 0, 0]  # version, receive and send buffer, max message size, max chunks
    raw_url = url.encode()
    url_len = None
    if lie and rng is not None:
        which = rng.randrange(6)
        if which < 5:
            fields[which] = rng.choice(ODD_SIZES)
        else:
            url_len = rng.choice((-2, 4096, 0x7FFFFFFF, len(raw_url) + 9))
    return _message(b"HEL", struct.pack("<5I", *fields) + _string(raw_url, url_len))


def opcua_cases(seed: int, count: int, url: str) -> list[Case]:
    """``count`` cases for the endpoint ``url``, the same for the same seed."""
    rng = random.Random(seed)
    names, weights = zip(*FAMILIES, strict=True)
    cases = []
    for index in range(count):
        family = rng.choices(names, weights)[0]
        if family == "hello_fields":
            frame, what = hello(url, rng, lie=True), "Hello with a field that lies"
        elif family == "header_size":
            body = hello(url)[8:]
            size = rng.choice((*ODD_SIZES, len(body) + 8 + rng.randint(1, 64)))
            frame, what = _message(b"HEL", body, size=size), f"Hello whose header says {size} bytes"
        elif family == "open_garbage":
            policy = b"http://opcfoundation.org/UA/SecurityPolicy#None"
            body = struct.pack("<I", 0) + _string(policy, rng.choice((len(policy), -5, 70000, 0x7FFFFFFF))) + \
                _string(b"", rng.choice((-1, 0, 1 << 20))) + _string(b"", -1) + rng.randbytes(rng.randint(0, 64))
            prefix = hello(url) if rng.random() < 0.5 else b""
            frame = prefix + _message(b"OPN", body)
            what = f"OPN with lying lengths{' after a sound Hello' if prefix else ' before any Hello'}"
        elif family == "message_garbage":
            body = struct.pack("<II", rng.getrandbits(32), rng.getrandbits(32)) + rng.randbytes(rng.randint(0, 200))
            frame = hello(url) + _message(b"MSG", body, chunk=rng.choice((b"F", b"C", b"A", b"X")))
            what = "MSG on a secure channel nobody opened"
        elif family == "unknown_type":
            kind = bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3))
            frame, what = _message(kind, rng.randbytes(rng.randint(0, 64))), f"message type {kind.decode()}"
        else:
            sound = hello(url)
            cut = rng.randint(1, len(sound) - 1)
            frame, what = sound[:cut], f"Hello cut to {cut} of {len(sound)} bytes"
        cases.append(Case(index, family, what, frame[:MAX_BODY + 32]))
    return cases


def acknowledged(reply: bytes | None) -> bool:
    """Is ``reply`` an Acknowledge (the answer to a sound Hello)?"""
    return bool(reply) and reply[:3] == b"ACK"
