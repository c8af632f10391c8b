"""cl. 68 (and 81) on a Modbus DUT: the server side of the Modbus application protocol specification V1.1b3
and of Modbus messaging on TCP/IP V1.0b, as the Modbus Organization's conformance test specification probes
it — with raw frames, on fresh connections, every exchange in the transcript."""

from __future__ import annotations

import struct

import pytest

from harness.conformance.wire.modbus_raw import (
    GATEWAY_NO_RESPONSE,
    ILLEGAL_ADDRESS,
    ILLEGAL_FUNCTION,
    ILLEGAL_VALUE,
    Answer,
    RawModbus,
    mbap,
    read_pdu,
    rtu,
    write_multiple_pdu,
    write_single_pdu,
)
from harness.conformance.wire.modbus_targets import (
    TABLE_OF_FC,
    declared_point,
    guarded,
    modbus_map,
    probe_pdu,
    response_time_s,
    unmapped_address,
    writable_register,
)
from harness.devices.api import WriteGuarded
from harness.verdicts import Inconclusive, NotApplicable

ALSO = ("81",)  # the data-exchange protocol is the standard one, as compatibility (cl. 81) asks
PUBLIC_FUNCTION_CODES = (1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43)
UNASSIGNED = (9, 0x41)  # an unassigned public code and a user-defined one nobody declared
READ_LIKE = {1: read_pdu(1, 0, 1), 2: read_pdu(2, 0, 1), 3: read_pdu(3, 0, 1), 4: read_pdu(4, 0, 1),
             7: bytes([7]), 8: bytes([8, 0, 0, 0x12, 0x34]), 11: bytes([11]), 12: bytes([12]), 17: bytes([17]),
             20: bytes([20, 0]), 24: bytes([24, 0, 0]), 43: bytes([0x2B, 0x0E, 1, 0])}


def served_codes(dut) -> list[int]:
    clock = dut.profile.clock
    return modbus_map(dut).served_function_codes(clock is not None and clock.writable)


def _is_exception(answer: Answer, fc: int, code: int) -> bool:
    return answer.function_code == (fc | 0x80) & 0xFF and answer.exception == code


def _expect_exception(check, raw: RawModbus, label: str, pdu: bytes, code: int) -> Answer:
    answer = raw.request(pdu, what=label)
    check.measure(label, answer.describe(), passed=_is_exception(answer, pdu[0], code),
                  limit=f"exception {code:02X} (function code 0x{(pdu[0] | 0x80) & 0xFF:02X})",
                  note=f"sent {answer.sent.hex()}")
    return answer


def _valid_answer_to(answer: Answer, fc: int) -> bool:
    return answer.answered and answer.function_code == fc


@pytest.mark.check("KZ-68-01", "every function code the profile declares answers correctly (reads: byte count "
                   "= 2 x quantity; writes: the request echoed)", also=ALSO)
def test_declared_function_codes_answer(dut, check):
    raw = RawModbus(dut)
    untried: list[str] = []
    for fc in served_codes(dut):
        if fc in TABLE_OF_FC:
            target = declared_point(dut, TABLE_OF_FC[fc])
            if target is None:
                untried.append(f"FC{fc:02d}: the profile declares no {TABLE_OF_FC[fc]} register to read")
                continue
            answer = raw.request(read_pdu(fc, target.address, target.count), what=f"FC{fc:02d} {target.name}")
            pdu = answer.pdu
            ok = _valid_answer_to(answer, fc) and len(pdu) >= 2 and pdu[1] == 2 * target.count \
                and len(pdu) == 2 + 2 * target.count
            check.measure(f"FC{fc:02d} read of {target.name} ({target.count} registers at {target.address})",
                          answer.describe(), passed=ok, limit=f"answer with {2 * target.count} data bytes")
        elif fc in (6, 16):
            _write_back(dut, check, raw, fc, untried)
        elif fc in READ_LIKE:
            answer = raw.request(READ_LIKE[fc], what=f"FC{fc:02d}")
            check.measure(f"FC{fc:02d} implemented", answer.describe(),
                          passed=answer.answered and not _is_exception(answer, fc, ILLEGAL_FUNCTION),
                          limit="any answer but exception 01", note="no target declared: only implementation")
        else:
            untried.append(f"FC{fc:02d}: a write the profile gives no target for (not sent blind)")
    raw.close()
    check.require()
    if untried:
        raise Inconclusive("declared function codes not exercised: " + "; ".join(untried))


def _write_back(dut, check, raw: RawModbus, fc: int, untried: list[str]) -> None:
    """FC6 / FC16 of a writable register's own current value: the device must echo it and nothing changes."""
    target = writable_register(dut)
    if target is None:
        untried.append(f"FC{fc:02d}: no writable one-register holding point or setting declared")
        return
    current = raw.request(read_pdu(3, target.address, 1), what=f"read {target.name} before FC{fc:02d}")
    if not _valid_answer_to(current, 3) or len(current.pdu) != 4:
        untried.append(f"FC{fc:02d}: {target.name} could not be read first ({current.describe()})")
        return
    (value,) = struct.unpack(">H", current.pdu[2:4])
    if guarded(dut, target) and isinstance(dut.device, WriteGuarded):
        dut.device.unlock()  # the profile protects settings: open the write session the lab's way
    pdu = write_single_pdu(target.address, value) if fc == 6 else write_multiple_pdu(target.address, [value])
    answer = raw.request(pdu, what=f"FC{fc:02d} {target.name} = {value} (its own value)")
    echo = pdu if fc == 6 else pdu[:5]
    check.measure(f"FC{fc:02d} write of {target.name} with its own value {value}", answer.describe(),
                  passed=answer.pdu == echo, limit=f"echo {echo.hex()}")


@pytest.mark.check("KZ-68-02", "a function code the profile does not declare is answered with exception 01 "
                   "(illegal function)", also=ALSO)
def test_undeclared_function_code_exception_01(dut, check):
    raw = RawModbus(dut)
    declared = set(served_codes(dut))
    for fc in [c for c in PUBLIC_FUNCTION_CODES if c not in declared] + list(UNASSIGNED):
        # Write-type codes go bare: a device that does implement one answers 03 and writes nothing.
        _expect_exception(check, raw, f"FC{fc:02d} (not declared)", READ_LIKE.get(fc, bytes([fc])),
                          ILLEGAL_FUNCTION)
    raw.close()
    check.require()


@pytest.mark.check("KZ-68-03", "an address outside the declared map is answered with exception 02 (illegal "
                   "data address), for every declared read and write function code", also=ALSO)
def test_address_outside_map_exception_02(dut, check):
    raw = RawModbus(dut)
    declared = served_codes(dut)
    for fc in declared:
        if fc in TABLE_OF_FC:
            address = unmapped_address(dut, TABLE_OF_FC[fc])
            _expect_exception(check, raw, f"FC{fc:02d} read at unmapped {address}", read_pdu(fc, address, 1),
                              ILLEGAL_ADDRESS)
            _expect_exception(check, raw, f"FC{fc:02d} read of 2 registers at 65535 (past the address space)",
                              read_pdu(fc, 0xFFFF, 2), ILLEGAL_ADDRESS)
    hole = unmapped_address(dut, "holding")
    if 6 in declared:
        _expect_exception(check, raw, f"FC06 write at unmapped {hole}", write_single_pdu(hole, 0), ILLEGAL_ADDRESS)
    if 16 in declared:
        _expect_exception(check, raw, f"FC16 write at unmapped {hole}", write_multiple_pdu(hole, [0]),
                          ILLEGAL_ADDRESS)
    raw.close()
    if not check.measurements:
        raise Inconclusive("the profile declares no register function code (3, 4, 6, 16) to probe")
    check.require()


@pytest.mark.check("KZ-68-04", "an illegal data value is answered with exception 03: a read quantity of 0 or "
                   "above 125, a write whose byte count disagrees with its quantity", also=ALSO)
def test_illegal_value_exception_03(dut, check):
    raw = RawModbus(dut)
    declared = served_codes(dut)
    for fc in declared:
        if fc in TABLE_OF_FC:
            target = declared_point(dut, TABLE_OF_FC[fc])
            address = target.address if target else 0
            for quantity in (0, 126):
                _expect_exception(check, raw, f"FC{fc:02d} quantity {quantity} at {address}",
                                  read_pdu(fc, address, quantity), ILLEGAL_VALUE)
    if 16 in declared:
        target = writable_register(dut)
        address = target.address if target else unmapped_address(dut, "holding")
        _expect_exception(check, raw, f"FC16 at {address}: byte count 4 for 1 register",
                          write_multiple_pdu(address, [0, 0], count=1), ILLEGAL_VALUE)
        _expect_exception(check, raw, f"FC16 at {address}: quantity 0", write_multiple_pdu(address, [], count=0),
                          ILLEGAL_VALUE)
    raw.close()
    if not check.measurements:
        raise Inconclusive("the profile declares no register function code (3, 4, 16) to probe")
    check.require()


@pytest.mark.check("KZ-68-05", "the MBAP header is honoured: transaction id echoed, protocol id 0, length "
                   "field true; a frame with another protocol id or a length field that disagrees with its "
                   "bytes is not answered as valid", also=ALSO)
def test_mbap_header(dut, check):
    modbus_map(dut)
    if dut.spec.transport.tcp is None:
        raise NotApplicable("the DUT is reached over a serial line (RTU): there is no MBAP header")
    raw = RawModbus(dut)
    unit, pdu, wait = raw.unit, probe_pdu(dut), response_time_s(dut)
    tid = 0xA5C3
    answer = raw.send_frame(mbap(pdu, unit, tid), what="MBAP: well-formed")
    header = answer.header
    check.measure(f"well-formed request: {answer.sent.hex()}", answer.describe(),
                  passed=_valid_answer_to(answer, pdu[0]), limit="a valid answer")
    if header is not None:
        check.equal("transaction id echoed", f"0x{header[0]:04X}", f"0x{tid:04X}")
        check.equal("protocol id", header[1], 0)
        check.equal("length field = bytes that follow it", header[2], len(answer.raw or b"") - 6)
        check.equal("unit id echoed", header[3], unit)
    bad = [("protocol id 1", mbap(pdu, unit, tid + 1, protocol=1)),
           ("length field 1 short of the PDU", mbap(pdu, unit, tid + 2, length=len(pdu))),
           ("length field 2 beyond the bytes sent", mbap(pdu, unit, tid + 3, length=len(pdu) + 3))]
    for label, frame in bad:
        answer = raw.send_frame(frame, wait_s=wait, what=f"MBAP: {label}")
        check.measure(f"{label}: {frame.hex()}", answer.describe(), passed=not _valid_answer_to(answer, pdu[0]),
                      limit="no answer, an exception, or the connection closed — never a valid answer")
    check.require()


@pytest.mark.check("KZ-68-06", "the unit id is handled as the profile declares (modbus.unit_id_policy): "
                   "the configured id is answered and echoed, another id as declared", also=ALSO)
def test_unit_id_policy(dut, check):
    m = modbus_map(dut)
    raw = RawModbus(dut)
    pdu, wait = probe_pdu(dut), response_time_s(dut)
    policy = m.unit_id_policy if raw.tcp else "configured_only"
    answer = raw.request(pdu, what=f"unit {raw.unit} (configured)")
    echoed = answer.header[3] if answer.header else (answer.raw[0] if answer.raw else None)
    check.measure(f"unit {raw.unit} (configured)", answer.describe(),
                  passed=_valid_answer_to(answer, pdu[0]) and echoed == raw.unit, limit="a valid answer, unit echoed")
    other = raw.unit % 247 + 1
    answer = raw.request(pdu, unit=other, wait_s=wait, what=f"unit {other} (another)")
    if policy == "configured_only":
        passed, limit = not answer.answered, f"no answer within {wait:g} s (policy configured_only)"
    elif policy == "any":
        echoed = answer.header[3] if answer.header else None
        passed, limit = _valid_answer_to(answer, pdu[0]) and echoed == other, "a valid answer, unit echoed (any)"
    else:
        passed = answer.exception in (GATEWAY_NO_RESPONSE, 0x0A)
        limit = "exception 0B (or 0A) — policy gateway"
    check.measure(f"unit {other} (not the configured {raw.unit})", answer.describe(), passed=passed, limit=limit)
    raw.close()
    check.require()


@pytest.mark.check("KZ-68-07", "RTU: a request with a bad CRC is ignored, never answered; the same request "
                   "with a sound CRC is", also=ALSO)
def test_bad_crc_ignored(dut, check):
    modbus_map(dut)
    if dut.spec.transport.serial is None:
        raise NotApplicable("the DUT is reached over TCP: frames carry no CRC there (TCP checks integrity)")
    raw = RawModbus(dut)
    pdu, wait = probe_pdu(dut), response_time_s(dut)
    answer = raw.send_frame(rtu(pdu, raw.unit, good_crc=False), wait_s=wait, what="RTU: bad CRC")
    check.measure(f"bad CRC: {answer.sent.hex()}", answer.describe(), passed=not answer.answered,
                  limit=f"no answer within {wait:g} s")
    answer = raw.send_frame(rtu(pdu, raw.unit), what="RTU: sound CRC")
    check.measure(f"sound CRC: {answer.sent.hex()}", answer.describe(), passed=_valid_answer_to(answer, pdu[0]),
                  limit="a valid answer")
    raw.close()
    check.require()
