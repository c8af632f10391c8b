"""The simulated DLMS meter's own security suite 0 (AES-GCM-128, Green Book 9.2.7): ciphering of xDLMS APDUs
with a global unicast key, the HLS-GMAC (mechanism 5) authentication tag, and the invocation-counter guard
that refuses a replayed request.

Written on ``cryptography``'s AESGCM, not on ``dlms-cosem``'s ``security`` module, so that the driver (which
ciphers with the library) and the simulator cannot agree through a shared bug; ``tests/test_dlms_security.py``
pins both this module and the library to the Green Book's worked example.

A protected payload is ``SC || IC || body``: SC the security control byte (suite in the low nibble,
``AUTHENTICATED`` and ``ENCRYPTED`` flags), IC the 4-byte invocation counter, body the ciphertext (or the
plain APDU when only authenticated) followed by the 12-byte truncated GCM tag when authenticated. The
initialisation vector is the sender's 8-byte system title and the IC.
"""

from __future__ import annotations

import hmac
from collections.abc import Hashable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from harness.simulators.dlms_meter.axdr import AxdrError, length, read_length

AUTHENTICATED, ENCRYPTED = 0x10, 0x20
SUITE_0 = 0
TAG_LENGTH = 12  # DLMS truncates the GCM tag to 96 bits
KEY_LENGTH = 16  # AES-128
TITLE_LENGTH = 8

# glo-ciphering APDU tags (Green Book 9.5): the request's and the response's
GLO_GET_REQUEST, GLO_SET_REQUEST, GLO_ACTION_REQUEST = 0xC8, 0xC9, 0xCB
GLO_GET_RESPONSE, GLO_SET_RESPONSE, GLO_ACTION_RESPONSE = 0xCC, 0xCD, 0xCF
GLO_OF = {0xC0: GLO_GET_REQUEST, 0xC1: GLO_SET_REQUEST, 0xC3: GLO_ACTION_REQUEST,
          0xC4: GLO_GET_RESPONSE, 0xC5: GLO_SET_RESPONSE, 0xC7: GLO_ACTION_RESPONSE}
GLO_REQUESTS = frozenset({GLO_GET_REQUEST, GLO_SET_REQUEST, GLO_ACTION_REQUEST})


class CipherError(ValueError):
    """A protected APDU that does not verify, decrypt or parse under this association's keys."""


@dataclass(frozen=True)
class Keys:
    """Security suite 0 keys of one association: global unicast encryption key and authentication key."""

    encryption: bytes
    authentication: bytes

    def __post_init__(self) -> None:
        for name, key in (("encryption", self.encryption), ("authentication", self.authentication)):
            if len(key) != KEY_LENGTH:
                raise ValueError(f"the {name} key must be {KEY_LENGTH} bytes for security suite 0, not {len(key)}")

    def __repr__(self) -> str:  # never a key in a log line or a traceback
        return "Keys(<redacted>)"


def _gcm(keys: Keys, title: bytes, counter: int) -> Cipher:
    if len(title) != TITLE_LENGTH:
        raise CipherError(f"a system title is {TITLE_LENGTH} bytes, not {len(title)}")
    return Cipher(algorithms.AES(keys.encryption), modes.GCM(title + counter.to_bytes(4, "big")))


def _tag(keys: Keys, title: bytes, counter: int, data: bytes, aad: bytes) -> tuple[bytes, bytes]:
    encryptor = _gcm(keys, title, counter).encryptor()
    encryptor.authenticate_additional_data(aad)
    out = encryptor.update(data) + encryptor.finalize()
    return out, encryptor.tag[:TAG_LENGTH]


def protect(control: int, title: bytes, counter: int, keys: Keys, plain: bytes) -> bytes:
    """``SC || IC || ciphered`` of ``plain`` under the policy in ``control`` (authenticated and/or encrypted)."""
    if not control & (AUTHENTICATED | ENCRYPTED):
        raise CipherError("the security control asks for neither authentication nor encryption")
    head = bytes([control]) + counter.to_bytes(4, "big")
    if control & ENCRYPTED:
        aad = bytes([control]) + keys.authentication if control & AUTHENTICATED else b""
        cipher, tag = _tag(keys, title, counter, plain, aad)
        return head + cipher + (tag if control & AUTHENTICATED else b"")
    _, tag = _tag(keys, title, counter, b"", bytes([control]) + keys.authentication + plain)
    return head + plain + tag


def unprotect(payload: bytes, title: bytes, keys: Keys) -> tuple[int, int, bytes]:
    """(security control, invocation counter, plain APDU) of ``SC || IC || ciphered`` sent by ``title``'s
    owner; CipherError when the tag does not verify or the payload is too short to hold what SC announces."""
    if len(payload) < 5:
        raise CipherError("a protected APDU holds at least its security control and invocation counter")
    control, counter, body = payload[0], int.from_bytes(payload[1:5], "big"), payload[5:]
    if control & 0x0F != SUITE_0:
        raise CipherError(f"security suite {control & 0x0F} is not offered (suite 0 only)")
    if not control & (AUTHENTICATED | ENCRYPTED):
        raise CipherError("the security control asks for neither authentication nor encryption")
    authenticated = bool(control & AUTHENTICATED)
    if authenticated and len(body) < TAG_LENGTH:
        raise CipherError("the protected APDU is shorter than its authentication tag")
    data, tag = (body[:-TAG_LENGTH], body[-TAG_LENGTH:]) if authenticated else (body, b"")
    if control & ENCRYPTED:
        decryptor = _gcm(keys, title, counter).decryptor()
        if authenticated:
            decryptor.authenticate_additional_data(bytes([control]) + keys.authentication)
        plain = decryptor.update(data)
        # a truncated tag cannot go to finalize_with_tag: recompute it from the plaintext instead
        _, expected = _tag(keys, title, counter, plain, bytes([control]) + keys.authentication) \
            if authenticated else (b"", b"")
    else:
        plain = data
        _, expected = _tag(keys, title, counter, b"", bytes([control]) + keys.authentication + plain)
    if authenticated and not _same(expected, tag):
        raise CipherError("the authentication tag does not verify")
    return control, counter, plain


def gmac(title: bytes, counter: int, keys: Keys, challenge: bytes) -> bytes:
    """HLS-GMAC (mechanism 5) answer to ``challenge``: ``SC || IC || GMAC tag`` with SC authenticated, suite 0."""
    control = AUTHENTICATED | SUITE_0
    _, tag = _tag(keys, title, counter, b"", bytes([control]) + keys.authentication + challenge)
    return bytes([control]) + counter.to_bytes(4, "big") + tag


def gmac_verifies(answer: bytes, title: bytes, keys: Keys, challenge: bytes) -> bool:
    """Whether ``answer`` (``SC || IC || tag``) is ``title``'s owner's GMAC of ``challenge`` under ``keys``."""
    if len(answer) != 5 + TAG_LENGTH or answer[0] != AUTHENTICATED | SUITE_0:
        return False
    return _same(gmac(title, int.from_bytes(answer[1:5], "big"), keys, challenge), answer)


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def wrap(glo_tag: int, payload: bytes) -> bytes:
    """A glo-ciphered APDU: its tag, the A-XDR length and ``SC || IC || ciphered``."""
    return bytes([glo_tag]) + length(len(payload)) + payload


def unwrap(apdu: bytes) -> tuple[int, bytes]:
    """(glo tag, ``SC || IC || ciphered``) of a glo-ciphered APDU; CipherError when its length disagrees."""
    if not apdu:
        raise CipherError("empty APDU")
    try:
        n, start = read_length(apdu, 1)
    except AxdrError as exc:
        raise CipherError(str(exc)) from None
    if start + n != len(apdu):
        raise CipherError("the glo-ciphered APDU's length disagrees with its content")
    return apdu[0], bytes(apdu[start:])


@dataclass
class InvocationGuard:
    """The last invocation counter accepted from each client (the meter keys it by client SAP, the key set's
    owner): a request must carry a higher one (Green Book 9.2.7.4: a replayed or reused counter is refused)."""

    last: dict[Hashable, int] = field(default_factory=dict)

    def accept(self, client: Hashable, counter: int) -> bool:
        if counter <= self.last.get(client, -1):
            return False
        self.last[client] = counter
        return True
