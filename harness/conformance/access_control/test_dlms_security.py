"""cl. 94 / 78 for DLMS/COSEM security (Green Book 9.2.7, security suite 0): an HLS-GMAC association is
established only when the client's answer to the meter's challenge verifies (IEC 62443-3-3 SR 1.2, strong
authentication of the client); a ciphered association answers protected APDUs only (SR 3.1, communication
integrity), and never the same invocation counter twice (SR 3.1, replay protection).

The keys come from the rig's credentials; the checks never write them anywhere (the transcript shows the
ciphered APDUs and their deciphered form, which hold no key). A falsified answer to the challenge is the
rig's correct one with a bit of its tag flipped, so the check needs no second key."""

from __future__ import annotations

from typing import Any

import pytest

from harness.conformance.dlms_checks import association, dlms_device, dlms_of, mechanism_absent
from harness.devices.api import DeviceTimeout
from harness.devices.dlms_link import AssociationRefused
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("electricity_meter", "heat_meter")

EXCEPTION_RESPONSE, GET_RESPONSE = 0xD8, 0xC4
CIPHERED_RESPONSES = {0xCC, 0xDB}  # glo-get-response, general-glo-ciphering


def _roles(dlms: Any, hls: bool) -> list[str]:
    return [name for name, a in dlms.associations.items()
            if (a.authentication == "hls_gmac" if hls else a.security != "none")]


def _probe(device: Any, dlms: Any) -> Any:
    """The attribute each check reads: the clock's time, else the first declared point."""
    if dlms.clock is not None:
        return device.attribute(8, dlms.clock.obis, 2)
    if not dlms.points:
        raise Inconclusive(Msg("the profile declares no object to read"))
    obj = next(iter(dlms.points.values()))
    return device.attribute(obj.class_id, obj.obis, obj.attribute)


def _kind(answer: bytes | None) -> Msg:
    if answer is None:
        return Msg("no answer")
    if answer[:1] == bytes([EXCEPTION_RESPONSE]):
        return Msg("exception-response (service error {error})", error=answer[2] if len(answer) > 2 else "?")
    if answer[:1] == bytes([GET_RESPONSE]):
        return Msg("GET-response in the clear")
    if answer[0] in CIPHERED_RESPONSES:
        return Msg("ciphered GET-response")
    return Msg("APDU 0x{tag:02X}", tag=answer[0])


def _ciphered(dut: Any, check: Any) -> tuple[Any, list[str], Any]:
    """The DLMS device, its ciphered associations and the attribute to probe them with (none: N/A, see
    ``mechanism_absent``)."""
    dlms = dlms_of(dut)
    device = dlms_device(dut)
    roles = _roles(dlms, hls=False)
    if not roles:
        mechanism_absent(dlms, check, Msg("ciphered"))
    return device, roles, _probe(device, dlms)


def _open_rightly(device: Any, role: str) -> None:
    try:
        with association(device, role):
            pass
    except AssociationRefused as exc:
        raise Inconclusive(Msg("association {role!r} refuses the rig's own keys ({exc}): are they this meter's?",
                               role=role, exc=exc)) from None


def _flip_tag(reply: bytes) -> bytes:
    return reply[:-1] + bytes([reply[-1] ^ 0x01])


@pytest.mark.check("KZ-94-07", "every HLS-GMAC association is established only when the client's answer to the "
                   "meter's challenge verifies: an answer with a wrong GMAC tag is refused; the rig's keys are "
                   "accepted [SR 1.2]", also=("78",))
def test_hls_refuses_wrong_tag(dut, check):
    dlms = dlms_of(dut)
    device = dlms_device(dut)
    roles = _roles(dlms, hls=True)
    if not roles:
        mechanism_absent(dlms, check, Msg("HLS-GMAC"))
    for role in roles:
        _open_rightly(device, role)
        check.measure(Msg("{role}: HLS-GMAC with the rig's keys", role=role), Msg("accepted"), passed=True)
        try:
            with association(device, role, hls_reply=_flip_tag):
                answer, refused = Msg("accepted"), False
        except AssociationRefused:
            answer, refused = Msg("rejected"), True
        check.measure(Msg("{role}: HLS-GMAC answer to the challenge with a wrong tag", role=role), answer,
                      passed=refused, limit=Msg("rejected"))
    check.require()


@pytest.mark.check("KZ-94-08", "a ciphered association answers protected APDUs only: a GET sent in the clear on "
                   "it is refused, never answered with data [SR 3.1]", also=("78",))
def test_plain_apdu_refused(dut, check):
    from dlms_cosem.protocol import xdlms

    device, roles, probe = _ciphered(dut, check)
    for role in roles:
        _open_rightly(device, role)
        with association(device, role) as link:
            try:
                answer: bytes | None = link.send_raw(xdlms.GetRequestNormal(cosem_attribute=probe).to_bytes(),
                                                     "get-in-the-clear")
            except DeviceTimeout:
                answer = None
        check.measure(Msg("{role}: GET in the clear on the ciphered association", role=role), _kind(answer),
                      passed=answer is None or answer[:1] == bytes([EXCEPTION_RESPONSE]),
                      limit=Msg("refused (exception-response) or not answered"))
    check.require()


@pytest.mark.check("KZ-94-09", "a ciphered association refuses a replayed request: the same protected GET sent "
                   "again (its invocation counter used) is not answered with data [SR 3.1]", also=("78",))
def test_replayed_counter_refused(dut, check):
    device, roles, probe = _ciphered(dut, check)
    for role in roles:
        _open_rightly(device, role)
        with association(device, role) as link:
            first = device.get_on(link, [probe])[0]
            check.measure(Msg("{role}: protected GET", role=role), Msg("answered"), passed=first is not None)
            try:
                answer: bytes | None = link.send_raw(link.last_sent, "get-replayed")
            except DeviceTimeout:
                answer = None
        check.measure(Msg("{role}: the same protected GET again (invocation counter reused)", role=role),
                      _kind(answer), passed=answer is None or answer[0] not in CIPHERED_RESPONSES | {GET_RESPONSE},
                      limit=Msg("refused (exception-response) or not answered"))
    check.require()
