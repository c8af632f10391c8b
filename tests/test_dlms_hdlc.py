"""DLMS/COSEM over HDLC (IEC 62056-46): the simulator's own frame code and the driver's (dlms-cosem's frames)
against the standard's byte example and against gurux-dlms (GPLv2, a test-time cross-reader only), and both
ends on a real pseudo-terminal pair: gurux and the driver read the same meter over the same line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.config import load_profile, load_rig
from harness.devices.dlms_hdlc import HdlcLine
from harness.fault_injection.serial_line import PtyPair
from harness.simulators.dlms_meter.defects import DLMS_METER_DEFECTS, HDLC_OWN
from harness.simulators.dlms_meter.hdlc import (
    Frame,
    FrameError,
    FrameReader,
    decode_address,
    encode_address,
    parse_frame,
)
from tests.conftest import DLMS_HDLC_DEFECTS_GROUP, checks_of, run_cli
from tests.russian_text import english_left

ROOT = Path(__file__).resolve().parents[1]
RIG = ROOT / "rigs" / "sim-dlms-meter-hdlc.yaml"
PROFILE = ROOT / "device_profiles" / "tek-sim-dlms.yaml"
# IEC 62056-46 / Green Book (DLMS UA 1000-2): SNRM from the public client (16) to the management logical device
# (1), one-octet server address, no parameters; its FCS is 0x010F sent low octet first.
SNRM_EXAMPLE = bytes.fromhex("7EA0070321930F017E")


def _dlms_cosem_address(logical: int, physical: int | None, kind: str):
    from dlms_cosem.hdlc.address import HdlcAddress

    wide = physical is not None and (logical > 0x7F or physical > 0x7F)
    return HdlcAddress(logical, physical, kind, extended_addressing=wide)


def test_snrm_and_its_fcs_are_the_standards_example():
    from dlms_cosem.hdlc import frames

    ours = Frame(encode_address(1), encode_address(16), 0x93).encode()
    assert ours == SNRM_EXAMPLE
    driver = frames.SetNormalResponseModeFrame(_dlms_cosem_address(1, None, "server"),
                                               _dlms_cosem_address(16, None, "client")).to_bytes()
    assert driver == SNRM_EXAMPLE
    assert parse_frame(SNRM_EXAMPLE[1:-1]).control == 0x93
    broken = bytearray(SNRM_EXAMPLE[1:-1])
    broken[-1] ^= 0x01
    with pytest.raises(FrameError, match="FCS"):
        parse_frame(bytes(broken))


@pytest.mark.parametrize(("logical", "physical", "client"), [(1, None, 16), (1, 17, 32), (1, 0x1234, 48)])
def test_framing_agrees_with_gurux(logical, physical, client):
    """SNRM and the first I-frame of an AARQ as gurux builds them: the simulator parses them (FCS and HCS check,
    the addresses decode) and encodes the same bytes again; dlms-cosem (the driver's frames) builds the same."""
    from dlms_cosem.hdlc import frames
    from gurux_dlms import GXDLMSClient
    from gurux_dlms.enums import Authentication, InterfaceType

    size = 0 if physical is None else (4 if physical > 0x7F else 2)
    server = GXDLMSClient.getServerAddress(logical, physical or 0, size) if physical is not None else logical
    gx = GXDLMSClient(True, client, server, Authentication.NONE, None, InterfaceType.HDLC)
    snrm = bytes(gx.snrmRequest())
    driver = frames.SetNormalResponseModeFrame(_dlms_cosem_address(logical, physical, "server"),
                                               _dlms_cosem_address(client, None, "client")).to_bytes()
    assert driver == snrm
    frame = parse_frame(snrm[1:-1])
    assert decode_address(frame.destination) == (logical, physical)
    assert decode_address(frame.source) == (client, None)
    assert Frame(frame.destination, frame.source, frame.control).encode() == snrm

    aarq = bytes(gx.aarqRequest()[0])
    frame = parse_frame(aarq[1:-1])
    assert frame.control & 0x01 == 0 and frame.info.startswith(b"\xe6\xe6\x00\x60")  # an I-frame: LLC, AARQ
    assert Frame(frame.destination, frame.source, frame.control, frame.info, frame.segmented).encode() == aarq
    ns, nr = (frame.control >> 1) & 7, frame.control >> 5
    assert frames.InformationFrame(_dlms_cosem_address(logical, physical, "server"),
                                   _dlms_cosem_address(client, None, "client"), frame.info, segmented=frame.segmented,
                                   send_sequence_number=ns, receive_sequence_number=nr).to_bytes() == aarq


def test_a_flag_octet_inside_the_fcs_does_not_end_the_frame():
    """Frames are delimited by their format field's length, not by the next 0x7E: found on the first run over
    a pty, where an answer whose FCS held 0x7E was cut short by dlms-cosem's flag search."""
    for n in range(4096):
        frame = Frame(encode_address(32), encode_address(1, 17), 0x30, b"\xe6\xe7\x00" + n.to_bytes(2, "big"))
        raw = frame.encode()
        if 0x7E in raw[-3:-1]:
            break
    else:
        pytest.fail("no payload gives an FCS with 0x7E")
    stream = b"\x00" + raw + raw[1:]  # noise, then two frames sharing a flag
    assert FrameReader().feed(stream, 0.0) == [raw[1:-1], raw[1:-1]]
    line = HdlcLine("unused", None)
    line._pending += stream
    assert line._take() == raw and line._take() == raw


class GuruxHdlc:
    """gurux's client on the harness's end of a pty: one public association (frames by gurux, bytes by pyserial)."""

    def __init__(self, port: str, logical: int, physical: int, client: int) -> None:
        import serial
        from gurux_dlms import GXDLMSClient, GXReplyData
        from gurux_dlms.enums import Authentication, InterfaceType

        self.line = serial.serial_for_url(port, baudrate=9600, timeout=0.05)
        self.client = GXDLMSClient(True, client, GXDLMSClient.getServerAddress(logical, physical, 2),
                                   Authentication.NONE, None, InterfaceType.HDLC)
        reply = GXReplyData()
        self._packet(self.client.snrmRequest(), reply)
        self.client.parseUAResponse(reply.data)
        reply = GXReplyData()
        for frame in self.client.aarqRequest():
            reply.clear()
            self._packet(frame, reply)
        self.client.parseAareResponse(reply.data)

    def _packet(self, data, reply) -> None:
        from gurux_dlms import GXByteBuffer, GXReplyData

        self.line.write(bytes(data))
        received = GXByteBuffer()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            received.set(self.line.read(max(1, self.line.in_waiting)))
            if received.size and self.client.getData(received, reply, GXReplyData()):
                return
        raise TimeoutError("no complete HDLC answer")

    def read(self, obis: str, class_id: int, attribute: int):
        from gurux_dlms.objects import GXDLMSData, GXDLMSRegister

        obj = (GXDLMSRegister if class_id == 3 else GXDLMSData)(obis)
        if class_id == 3:
            self._read(obj, 3)
        return self._read(obj, attribute)

    def _read(self, obj, attribute):
        from gurux_dlms import GXReplyData

        reply = GXReplyData()
        for frame in self.client.read(obj, attribute):
            reply.clear()
            self._packet(frame, reply)
        while reply.isMoreData():
            frame = self.client.receiverReady(reply)
            self._packet(frame, reply)
        return self.client.updateValue(obj, attribute, reply.value)

    def close(self) -> None:
        from gurux_dlms import GXReplyData

        try:
            self._packet(self.client.disconnectRequest(), GXReplyData())
        finally:
            self.line.close()


@pytest.mark.serial
def test_gurux_and_the_driver_read_the_same_meter_over_hdlc(tmp_path):
    from harness.devices.dlms import DlmsDevice

    loaded = load_rig(RIG)
    spec = loaded.rig.duts["meter"]
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({k: v.model_dump(exclude_none=True, mode="json") for k, v in spec.credentials.items()}))
    creds.chmod(0o600)
    pair = PtyPair(tmp_path, "line")
    pair.open()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "sim", "dlms-meter", "--state-dir", str(tmp_path / "s"),
                             "--hdlc", str(pair.dut_end), "--credentials-file", str(creds)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        profile = load_profile(PROFILE)
        device = DlmsDevice("meter", profile, spec, loaded.rig.timing, None, {"serial_port": str(pair.harness_end)})
        deadline = time.monotonic() + 20
        while True:  # the simulator is ready when it answers
            try:
                serial = device.identity().serial_number
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        ours = device.read_many(["active_import_total"])["active_import_total"]
        device.close()
        hdlc = profile.dlms.hdlc
        gx = GuruxHdlc(str(pair.harness_end), profile.dlms.server_logical_address, hdlc.physical_address,
                       profile.dlms.associations[profile.dlms.public()].client_sap)
        try:
            point = profile.dlms.points["serial_number"]
            assert str(gx.read(point.obis, point.class_id, point.attribute)) == serial == "95000101"
            energy = profile.dlms.points["active_import_total"]
            theirs = gx.read(energy.obis, 3, 2)  # scaled by gurux with the scaler_unit it read itself
        finally:
            gx.close()
        assert 0 <= float(theirs) - ours.value < 3000 * 10 / 3600  # Wh: the meter counts on between the two reads
        _segmented_both_ways(profile, spec, loaded.rig.timing, pair, tmp_path)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        pair.close()


def _segmented_both_ways(profile, spec, timing, pair, tmp_path) -> None:
    """APDUs longer than an information field go in segments both ways: the driver's (sent at 40 octets a frame
    here, the AARQ with its LLS password too) acknowledged with RR, the meter's answer (a client max receive PDU of
    1024: no blocks) asked for with RR; the values are those read in the ordinary way, and the
    password split over frames is nowhere in the transcript."""
    from harness.devices.dlms import DlmsDevice
    from harness.devices.dlms_hdlc import HdlcCarrier
    from harness.devices.transcript import Transcript

    transcript = Transcript(tmp_path / "transcript.jsonl")
    device = DlmsDevice("meter", profile, spec, timing, transcript, {"serial_port": str(pair.harness_end)})
    # a GET-with-list of 12 (the most a 128-octet PDU holds) of the serial number: an answer of ~140 octets
    points = [("serial_number", profile.dlms.points["serial_number"])] * 12
    saved, HdlcCarrier.max_info = HdlcCarrier.max_info, 40
    try:
        link = device.open_link(profile.dlms.reads_with, receive_pdu=1024)
        try:
            got = device.get_on(link, [device.attribute(o.class_id, o.obis, o.attribute) for _, o in points])
        finally:
            link.close()
        assert link.exchanges["get-next"] == 0
        whole = device.read_many(["serial_number"])
    finally:
        HdlcCarrier.max_info = saved
        device.close()
        transcript.close()
    assert [v.decode() if isinstance(v, bytes) else str(v) for v in got] == [str(whole["serial_number"].value)] * 12
    text = (tmp_path / "transcript.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    frames = [f for r in rows if r.get("op") in ("get", "associate") for f in r.get("hdlc_frames", [])]
    assert any(f.startswith("out:7ea8") for f in frames) and any(f.startswith("in:7ea8") for f in frames), frames
    assert any("redacted: a segment" in f for f in frames)
    password = spec.credentials[profile.dlms.associations[profile.dlms.reads_with].credential].password
    assert password not in text and password.encode().hex() not in text


# ---- through `harness certify` on the HDLC rig ------------------------------------------------------------------
HDLC_DEFECTS = list(HDLC_OWN)  # the TCP rig's (DLMS_OWN) are tests/test_dlms.py's
HDLC_CHECKS = ["KZ-68-15", "KZ-49-01"]


def _rig_with_fewer_cases(tmp_path: Path, cases: int) -> Path:
    """The HDLC rig with a shorter fuzz campaign (every family still several times): test time, not coverage."""
    text = RIG.read_text(encoding="utf-8").replace("../device_profiles/", f"{ROOT}/device_profiles/")
    text = text.replace("robustness:", f"robustness:\n  fuzz_cases: {cases}", 1)
    rig = tmp_path / "rig.yaml"
    rig.write_text(text, encoding="utf-8")
    return rig


@pytest.mark.slow
@pytest.mark.serial
def test_golden_meter_over_hdlc_passes_the_hdlc_checks(tmp_path):
    """Bad FCS/HCS ignored, and the fuzz campaign on the line survived (every family of case sent, 6 times each),
    with every planned case sent and no reproducer kept. Certified in Russian: no English word left but names."""
    out = tmp_path / "out"
    res = run_cli("certify", str(_rig_with_fewer_cases(tmp_path, 66)), "--out", str(out), "--reruns", "0",
                  "--lang", "ru", *(arg for c in HDLC_CHECKS for arg in ("--check", c)))
    assert res.returncode == 0, res.stdout + res.stderr
    checks = checks_of(out)
    assert {c: r["verdict"] for c, r in checks.items()} == dict.fromkeys(HDLC_CHECKS, "PASS")
    coverage = next(m for m in checks["KZ-49-01"]["measurements"] if m["name"].startswith("coverage"))
    assert coverage["measured"] == 100.0, coverage
    assert not list(out.rglob("reproducers/*"))
    assert not english_left(out), english_left(out)
    transcript = (out / "transcript.jsonl").read_text(encoding="utf-8")
    assert '"hdlc_frames"' in transcript and '"op": "associate"' in transcript.replace('":"', '": "')
    for cred in load_rig(RIG).rig.duts["meter"].credentials.values():  # the monitor associates with LLS
        if cred.password:
            assert cred.password not in transcript and cred.password.encode().hex() not in transcript


@pytest.mark.serial
@pytest.mark.slow  # the batch: ~30 s wall, started early
@pytest.mark.xdist_group(DLMS_HDLC_DEFECTS_GROUP)
@pytest.mark.parametrize("defect", [d.name for d in HDLC_DEFECTS])
def test_each_hdlc_defect_fails_its_check(dlms_hdlc_defects, defect):
    """Each fails its check; a campaign that broke the meter keeps a serial-line reproducer naming the case."""
    run = dlms_hdlc_defects.run(DLMS_METER_DEFECTS[defect])
    assert run.record["measurements"], run.record
    if DLMS_METER_DEFECTS[defect].expect == "KZ-49-01":  # its DUT is named after its defect (tests/defect_rigs.py)
        out = dlms_hdlc_defects.part(defect)[0]
        sidecar = json.loads(next(out.rglob(f"reproducers/KZ-49-01-{defect}*.json")).read_text())
        assert sidecar["protocol"] == "dlms-hdlc"
        assert any(c["family"] == "odd_address" for c in sidecar["cases"]), sidecar["cases"]


def test_fuzz_cases_are_reproducible_and_never_alter_the_meter():
    from harness.conformance.wire.dlms_fuzz import ALTERING_TAGS, hdlc_cases, wrapper_cases

    assert hdlc_cases(7, 60, 1, 17, 16) == hdlc_cases(7, 60, 1, 17, 16) != hdlc_cases(8, 60, 1, 17, 16)
    for case in wrapper_cases(7, 200, 1, 16):
        assert case.frame[8:9] == b"" or case.frame[8] not in ALTERING_TAGS, case
    for case in hdlc_cases(7, 400, 1, 17, 16):
        for content in FrameReader().feed(case.frame, 0.0):
            try:
                frame = parse_frame(content)
            except FrameError:
                continue
            if frame.control & 1 == 0 and len(frame.info) > 3:
                assert frame.info[3] not in ALTERING_TAGS, case
