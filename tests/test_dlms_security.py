"""The simulated DLMS meter's security suite 0 against the DLMS UA Green Book's worked AES-GCM example
(DLMS UA 1000-2, the ciphering example: the published keys, system title and invocation counter, a
GET-request of the clock's time) and against ``dlms-cosem``'s client ciphering, so that a bug in the
simulator's own AES-GCM framing cannot hide behind the driver agreeing with it."""

from __future__ import annotations

import pytest
from dlms_cosem import security as lib

from harness.simulators.dlms_meter import security as sec

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
TITLE = bytes.fromhex("4D4D4D0000BC614E")
IC = 0x01234567
PLAIN = bytes.fromhex("C0010000080000010000FF0200")  # get-request-normal, clock 0.0.1.0.0.255 attribute 2
KEYS = sec.Keys(EK, AK)

# the Green Book's published results for the three policies (SC 0x30, 0x20, 0x10)
GREEN_BOOK = {
    0x30: bytes.fromhex("3001234567" "411312FF935A47566827C467BC" "7D825C3BE4A77C3FCC056B6B"),
    0x20: bytes.fromhex("2001234567" "411312FF935A47566827C467BC"),
    0x10: bytes.fromhex("1001234567" "C0010000080000010000FF0200" "06725D910F9221D263877516"),
}
GLO_GET = bytes.fromhex("C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")


@pytest.mark.parametrize("control", sorted(GREEN_BOOK))
def test_protect_gives_the_green_book_bytes(control):
    assert sec.protect(control, TITLE, IC, KEYS, PLAIN) == GREEN_BOOK[control]
    assert sec.unprotect(GREEN_BOOK[control], TITLE, KEYS) == (control, IC, PLAIN)


def test_glo_get_request_wraps_as_published():
    assert sec.wrap(sec.GLO_OF[PLAIN[0]], GREEN_BOOK[0x30]) == GLO_GET
    assert sec.unwrap(GLO_GET) == (sec.GLO_GET_REQUEST, GREEN_BOOK[0x30])


def test_library_and_simulator_decrypt_each_other():
    control = lib.SecurityControlField(security_suite=0, authenticated=True, encrypted=True)
    by_library = control.to_bytes() + IC.to_bytes(4, "big") + lib.encrypt(control, TITLE, IC, EK, PLAIN, AK)
    assert by_library == GREEN_BOOK[0x30]
    assert lib.decrypt(control, TITLE, IC, EK, sec.protect(0x30, TITLE, IC, KEYS, PLAIN)[5:], AK) == PLAIN


def test_hls_gmac_agrees_with_the_library():
    challenge = bytes.fromhex("503677524A323146")
    control = lib.SecurityControlField(security_suite=0, authenticated=True)
    expected = b"\x10" + IC.to_bytes(4, "big") + lib.gmac(control, TITLE, IC, EK, AK, challenge)
    assert sec.gmac(TITLE, IC, KEYS, challenge) == expected
    assert sec.gmac_verifies(expected, TITLE, KEYS, challenge)
    assert not sec.gmac_verifies(expected, TITLE, sec.Keys(EK, bytes(16)), challenge)
    assert not sec.gmac_verifies(expected, TITLE, KEYS, challenge[::-1])


@pytest.mark.parametrize("where", [5, 10, -1])
def test_a_flipped_bit_is_refused(where):
    tampered = bytearray(GREEN_BOOK[0x30])
    tampered[where] ^= 0x01
    with pytest.raises(sec.CipherError):
        sec.unprotect(bytes(tampered), TITLE, KEYS)
    with pytest.raises(sec.CipherError):
        sec.unprotect(GREEN_BOOK[0x30], TITLE, sec.Keys(EK, bytes(16)))


def test_a_reused_invocation_counter_is_refused():
    guard = sec.InvocationGuard()
    assert guard.accept(TITLE, IC)
    assert not guard.accept(TITLE, IC)
    assert not guard.accept(TITLE, IC - 1)
    assert guard.accept(TITLE, IC + 1)
    assert guard.accept(b"OTHERCLI", 0)


def test_keys_never_show():
    assert "0001" not in repr(KEYS) and "D0D1" not in repr(KEYS).upper()
    with pytest.raises(ValueError, match="16 bytes"):
        sec.Keys(EK[:8], AK)
