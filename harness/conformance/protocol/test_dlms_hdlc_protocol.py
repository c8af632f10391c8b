"""cl. 68 (and 81) on a DLMS/COSEM meter on a serial line: the HDLC data link (IEC 62056-46) takes only frames
that check. A frame whose FCS or HCS is wrong was damaged on the line; a meter that answers it acts on bytes
nobody sent (a SNRM that resets a connection, an I-frame whose APDU is not the client's), and a meter that
counts it advances its sequence numbers past the frame the client will repeat. The bad frames are the
harness's own (a SNRM and an AARQ I-frame of the public client, one octet of the check sequence changed)."""

from __future__ import annotations

import pytest

from harness.conformance.dlms_checks import dlms_device, dlms_of
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable

pytestmark = pytest.mark.dut_kind("electricity_meter", "heat_meter")

ALSO = ("81",)


def _shown(answer: bytes | None) -> str:
    return Msg("no answer") if answer is None else Msg("answered {hex}", hex=answer.hex())


@pytest.mark.check("KZ-68-15", "HDLC: a frame with a bad FCS or HCS is ignored, never answered, and leaves the "
                   "connection as it was; the same frame with sound check sequences is answered", also=ALSO)
def test_bad_frame_check_sequence_ignored(dut, check):
    from dlms_cosem.connection import DlmsConnection
    from dlms_cosem.security import NoSecurityAuthentication

    from harness.devices.dlms_hdlc import RawHdlc, with_bad_fcs, with_bad_hcs

    dlms = dlms_of(dut)
    if dut.spec.transport.serial is None:
        raise NotApplicable(Msg("the meter is reached over the TCP wrapper: no HDLC frames (TCP checks integrity)"))
    device = dlms_device(dut)
    if getattr(device, "line", None) is None:
        raise Inconclusive(Msg("the {driver} driver gives no access to the HDLC line", driver=type(device).__name__))
    role = dlms.public() or dlms.reads_with
    record = (lambda **f: dut.transcript.record(dut.name, **f)) if dut.transcript is not None else None
    raw = RawHdlc(device.line, dlms.server_logical_address, dlms.hdlc.physical_address,
                  dlms.associations[role].client_sap, record)
    wait = dut.timing.request_timeout_s
    try:
        if raw.send(raw.snrm(), wait) is None:
            raise Inconclusive(Msg("the meter does not answer a sound SNRM as {role}: nothing to compare with",
                                   role=role))
        snrm = with_bad_fcs(raw.snrm())
        answer = raw.send(snrm, wait)
        check.measure(Msg("SNRM with a bad FCS: {hex}", hex=snrm.hex()), _shown(answer), passed=answer is None,
                      limit=Msg("no answer within {wait:g} s", wait=wait))
        connection = DlmsConnection(authentication=NoSecurityAuthentication(), client_system_title=b"TEKHARNS")
        aarq = raw.information(connection.send(connection.get_aarq()))
        ua = raw.send(raw.snrm(), wait)  # a fresh connection: the I-frame below is its first (N(S) = 0)
        for what, frame in ((Msg("AARQ I-frame with a bad FCS"), with_bad_fcs(aarq)),
                            (Msg("AARQ I-frame with a bad HCS (FCS sound over it)"), with_bad_hcs(aarq))):
            answer = raw.send(frame, wait)
            check.measure(Msg("{what}: {hex}", what=what, hex=frame.hex()), _shown(answer), passed=answer is None,
                          limit=Msg("no answer within {wait:g} s", wait=wait))
        answer = raw.send(aarq, wait)
        check.measure(Msg("the same AARQ I-frame, sound, as the connection's first"), _shown(answer),
                      passed=ua is not None and answer is not None and _is_information(answer),
                      limit=Msg("an I-frame (the AARE): the bad frames were not counted"))
    finally:
        raw.send(raw.disc(), wait)
    check.require()


def _is_information(frame: bytes) -> bool:
    """An I-frame (control field bit 0 clear) after the two address fields."""
    pos = 3
    for _ in range(2):
        while pos < len(frame) - 3 and not frame[pos] & 1:
            pos += 1
        pos += 1
    return pos < len(frame) - 3 and frame[pos] & 1 == 0
