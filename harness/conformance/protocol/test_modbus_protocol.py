"""cl. 68 (and 81) on a Modbus DUT: the server side of the Modbus application protocol specification V1.1b3
and of Modbus messaging on TCP/IP V1.0b, as the Modbus Organization's conformance test specification probes
it — with raw frames, on fresh connections, every exchange in the transcript."""

from __future__ import annotations

import pytest

from harness.conformance.protocol.modbus_probes import Probe, ProbeRun, is_exception
from harness.conformance.protocol.modbus_writeback import write_back
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
    write_coil_pdu,
    write_coils_pdu,
    write_multiple_pdu,
    write_single_pdu,
)
from harness.conformance.wire.modbus_targets import (
    MAX_READ_QUANTITY,
    TABLE_OF_FC,
    Pick,
    absent_address,
    declared_point,
    modbus_map,
    probe_pdu,
    response_time_s,
    unmapped_address,
    writable_point,
)
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable

ALSO = ("81",)  # the data-exchange protocol is the standard one, as compatibility (cl. 81) asks
PUBLIC_FUNCTION_CODES = (1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43)
UNASSIGNED = (9, 0x41)  # an unassigned public code and a user-defined one nobody declared
READ_LIKE = {1: read_pdu(1, 0, 1), 2: read_pdu(2, 0, 1), 3: read_pdu(3, 0, 1), 4: read_pdu(4, 0, 1),
             7: bytes([7]), 8: bytes([8, 0, 0, 0x12, 0x34]), 11: bytes([11]), 12: bytes([12]), 17: bytes([17]),
             20: bytes([20, 0]), 24: bytes([24, 0, 0]), 43: bytes([0x2B, 0x0E, 1, 0])}
WRITE_TABLE = {5: "coil", 6: "holding", 15: "coil", 16: "holding"}  # write codes probed at unmapped addresses
WRITTEN_BACK = (5, 6, 15, 16, 22, 23)  # write codes KZ-68-01 exercises with a point's own value


@pytest.fixture
def allow_destructive(harness_run) -> bool:
    """The rig's allow_destructive: probes that could change the device run only where it is true."""
    return bool(harness_run.loaded.rig.allow_destructive)


def served_codes(dut) -> list[int]:
    clock = dut.profile.clock
    return modbus_map(dut).served_function_codes(clock is not None and clock.writable)


def _expect_exception(check, raw: RawModbus, label: str, pdu: bytes, code: int) -> Answer:
    answer = raw.request(pdu, what=label)
    check.measure(label, answer.describe(), passed=is_exception(answer, pdu[0], code),
                  limit=Msg("exception {code:02X} (function code 0x{value:02X})", code=code,
                            value=(pdu[0] | 0x80) & 0xFF),
                  note=Msg("sent {hex}", hex=answer.sent.hex()))
    return answer


def _valid_answer_to(answer: Answer, fc: int) -> bool:
    return answer.answered and answer.function_code == fc


def _data_bytes(table: str, count: int) -> int:
    """Data bytes of a read answer: two per register, one per eight bits."""
    return (count + 7) // 8 if table in ("coil", "discrete_input") else 2 * count


@pytest.mark.check("KZ-68-01", "every function code the profile declares answers correctly (reads: byte count "
                   "= 2 x quantity, or one byte per 8 bits; writes: a point's own value written back is echoed "
                   "and the point unchanged)", also=ALSO)
def test_declared_function_codes_answer(dut, check):
    raw = RawModbus(dut)
    untried: list[str] = []
    for fc in served_codes(dut):
        if fc in TABLE_OF_FC:
            table = TABLE_OF_FC[fc]
            target = declared_point(dut, table)
            if target is None:
                untried.append(f"FC{fc:02d}: the profile declares no {table} point to read")
                continue
            answer = raw.request(read_pdu(fc, target.address, target.count), what=f"FC{fc:02d} {target.name}")
            pdu, size = answer.pdu, _data_bytes(table, target.count)
            ok = _valid_answer_to(answer, fc) and len(pdu) >= 2 and pdu[1] == size and len(pdu) == 2 + size
            check.measure(Msg("FC{fc:02d} read of {name} ({count} {table} at {address})", fc=fc, name=target.name,
                              count=target.count, table=table, address=target.address),
                          answer.describe(), passed=ok, limit=Msg("answer with {size} data bytes", size=size))
        elif fc in WRITTEN_BACK:
            write_back(dut, check, raw, fc, untried)
        elif fc in READ_LIKE:
            answer = raw.request(READ_LIKE[fc], what=f"FC{fc:02d}")
            check.measure(Msg("FC{fc:02d} implemented", fc=fc), answer.describe(),
                          passed=answer.answered and not is_exception(answer, fc, ILLEGAL_FUNCTION),
                          limit=Msg("any answer but exception 01"), note=Msg("no target declared: only implementation"))
        else:
            untried.append(f"FC{fc:02d}: a write the profile gives no target for (not sent blind)")
    raw.close()
    check.require()
    if untried:
        raise Inconclusive(Msg("declared function codes not exercised: {codes}", codes=Msg.joined("; ", untried)))


@pytest.mark.check("KZ-68-02", "a function code the profile does not declare is answered with exception 01 "
                   "(illegal function)", also=ALSO)
def test_undeclared_function_code_exception_01(dut, check):
    raw = RawModbus(dut)
    declared = set(served_codes(dut))
    for fc in [c for c in PUBLIC_FUNCTION_CODES if c not in declared] + list(UNASSIGNED):
        # Write-type codes go bare: a device that does implement one answers 03 and writes nothing.
        _expect_exception(check, raw, Msg("FC{fc:02d} (not declared)", fc=fc), READ_LIKE.get(fc, bytes([fc])),
                          ILLEGAL_FUNCTION)
    raw.close()
    check.require()


def _write_of_nothing(fc: int, address: int) -> bytes:
    """A write of the neutral value (0, OFF) at ``address``."""
    return {5: write_coil_pdu(address, 0), 6: write_single_pdu(address, 0), 15: write_coils_pdu(address, [0]),
            16: write_multiple_pdu(address, [0])}[fc]


def _write_risk(table: str, pick: Pick) -> str | None:
    if pick.declared_absent:
        return None
    return (f"a write to {table} {pick.address}, which the profile does not declare absent (no "
            f"modbus.address_space.{table}): an undeclared address may hold a vendor setting")


@pytest.mark.check("KZ-68-03", "an address outside the declared map (and its reserved ranges) is answered with "
                   "exception 02 (illegal data address), for every declared read and write function code",
                   also=ALSO)
def test_address_outside_map_exception_02(dut, check, allow_destructive):
    run = ProbeRun(check, RawModbus(dut), allow_destructive)
    declared = served_codes(dut)
    for fc in declared:
        if fc in TABLE_OF_FC:
            table = TABLE_OF_FC[fc]
            pick = unmapped_address(dut, table)
            if pick is not None:
                run.expect(Probe(Msg("FC{fc:02d} read at unmapped {table} {address}", fc=fc, table=table,
                                     address=pick.address), read_pdu(fc, pick.address, 1),
                                 ILLEGAL_ADDRESS, why=pick.why))
            run.expect(Probe(Msg("FC{fc:02d} read of 2 at 65535 (past the address space)", fc=fc), read_pdu(fc,
                                                                                                            0xFFFF, 2),
                             ILLEGAL_ADDRESS, why=Msg("the last address: a read of two runs past 65535")))
    for fc, table in WRITE_TABLE.items():
        if fc not in declared:
            continue
        pick = absent_address(dut, table) or unmapped_address(dut, table)
        if pick is None:
            continue  # every address declared or reserved, and none declared absent
        run.expect(Probe(Msg("FC{fc:02d} write at unmapped {table} {address}", fc=fc, table=table,
                             address=pick.address), _write_of_nothing(fc, pick.address),
                         ILLEGAL_ADDRESS, _write_risk(table, pick), pick.why))
    run.conclude("the profile declares no read or write function code (FC1-FC6, FC15, FC16) to probe, or every "
                 "address is declared or reserved")


@pytest.mark.check("KZ-68-04", "an illegal data value is answered with exception 03: a read quantity of 0 or "
                   "above the maximum, a write whose byte count disagrees with its quantity, a coil value other "
                   "than ON or OFF", also=ALSO)
def test_illegal_value_exception_03(dut, check, allow_destructive):
    run = ProbeRun(check, RawModbus(dut), allow_destructive)
    declared = served_codes(dut)
    for fc in declared:
        if fc in TABLE_OF_FC:
            table = TABLE_OF_FC[fc]
            target = declared_point(dut, table)
            address = target.address if target else 0
            for quantity in (0, MAX_READ_QUANTITY[table] + 1):
                run.expect(Probe(Msg("FC{fc:02d} quantity {quantity} at {address}", fc=fc, quantity=quantity,
                                     address=address), read_pdu(fc, address, quantity),
                                 ILLEGAL_VALUE))
    for fc, table in WRITE_TABLE.items():
        if fc not in declared or fc == 6:  # FC06 carries any 16-bit value: nothing illegal to send
            continue
        absent = absent_address(dut, table)
        writable = writable_point(dut, table)
        pick = absent or (Pick(writable.address, Msg("the declared writable {name}", name=writable.name),
                               False) if writable
                          else unmapped_address(dut, table))
        if pick is None:
            continue
        address, why = pick.address, pick.why
        risk = None if absent else f"a device that ignores the check would store the data at {table} {address} " \
            f"({why})"
        if fc == 16:
            run.expect(Probe(Msg("FC16 at {address}: byte count 4 for 1 register", address=address),
                             write_multiple_pdu(address, [0, 0], count=1), ILLEGAL_VALUE, risk, why))
            run.expect(Probe(Msg("FC16 at {address}: quantity 0", address=address),
                             write_multiple_pdu(address, [], count=0), ILLEGAL_VALUE,
                             why=Msg("{why}; no data to store", why=why)))
        elif fc == 15:
            run.expect(Probe(Msg("FC15 at {address}: byte count 2 for 1 coil", address=address),
                             write_coils_pdu(address, [0] * 9, count=1), ILLEGAL_VALUE, risk, why))
            run.expect(Probe(Msg("FC15 at {address}: quantity 0", address=address),
                             write_coils_pdu(address, [], count=0), ILLEGAL_VALUE,
                             why=Msg("{why}; no data to store", why=why)))
        else:
            run.expect(Probe(Msg("FC05 at {address}: value 0x1234 (neither ON nor OFF)", address=address),
                             write_coil_pdu(address, 0x1234),
                             ILLEGAL_VALUE, risk, why))
    run.conclude("the profile declares no read or multiple-write function code (FC1-FC4, FC5, FC15, FC16) to probe")


@pytest.mark.check("KZ-68-05", "the MBAP header is honoured: transaction id echoed, protocol id 0, length "
                   "field true; a frame with another protocol id or a length field that disagrees with its "
                   "bytes is not answered as valid", also=ALSO)
def test_mbap_header(dut, check):
    modbus_map(dut)
    if dut.spec.transport.tcp is None:
        raise NotApplicable(Msg("the DUT is reached over a serial line (RTU): there is no MBAP header"))
    raw = RawModbus(dut)
    unit, pdu, wait = raw.unit, probe_pdu(dut), response_time_s(dut)
    tid = 0xA5C3
    answer = raw.send_frame(mbap(pdu, unit, tid), what="MBAP: well-formed")
    header = answer.header
    check.measure(Msg("well-formed request: {hex}", hex=answer.sent.hex()), answer.describe(),
                  passed=_valid_answer_to(answer, pdu[0]), limit=Msg("a valid answer"))
    if header is not None:
        check.equal(Msg("transaction id echoed"), f"0x{header[0]:04X}", f"0x{tid:04X}")  # ids: no words
        check.equal(Msg("protocol id"), header[1], 0)
        check.equal(Msg("length field = bytes that follow it"), header[2], len(answer.raw or b"") - 6)
        check.equal(Msg("unit id echoed"), header[3], unit)
    bad = [(Msg("protocol id 1"), mbap(pdu, unit, tid + 1, protocol=1)),
           (Msg("length field 1 short of the PDU"), mbap(pdu, unit, tid + 2, length=len(pdu))),
           (Msg("length field 2 beyond the bytes sent"), mbap(pdu, unit, tid + 3, length=len(pdu) + 3))]
    for label, frame in bad:
        answer = raw.send_frame(frame, wait_s=wait, what=f"MBAP: {label}")
        check.measure(Msg("{label}: {hex}", label=label,
                          hex=frame.hex()), answer.describe(), passed=not _valid_answer_to(answer, pdu[0]),
                      limit=Msg("no answer, an exception, or the connection closed — never a valid answer"))
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
    check.measure(Msg("unit {unit} (configured)", unit=raw.unit), answer.describe(),
                  passed=_valid_answer_to(answer,
                                          pdu[0]) and echoed == raw.unit, limit=Msg("a valid answer, unit echoed"))
    other = raw.unit % 247 + 1
    answer = raw.request(pdu, unit=other, wait_s=wait, what=f"unit {other} (another)")
    if policy == "configured_only":
        passed, limit = not answer.answered, Msg("no answer within {wait:g} s (policy configured_only)", wait=wait)
    elif policy == "any":
        echoed = answer.header[3] if answer.header else None
        passed, limit = _valid_answer_to(answer, pdu[0]) and echoed == other, "a valid answer, unit echoed (any)"
    else:
        passed = answer.exception in (GATEWAY_NO_RESPONSE, 0x0A)
        limit = "exception 0B (or 0A) — policy gateway"
    check.measure(Msg("unit {other} (not the configured {unit})", other=other,
                      unit=raw.unit), answer.describe(), passed=passed, limit=limit)
    raw.close()
    check.require()


@pytest.mark.check("KZ-68-07", "RTU: a request with a bad CRC is ignored, never answered; the same request "
                   "with a sound CRC is", also=ALSO)
def test_bad_crc_ignored(dut, check):
    modbus_map(dut)
    if dut.spec.transport.serial is None:
        raise NotApplicable(Msg("the DUT is reached over TCP: frames carry no CRC there (TCP checks integrity)"))
    raw = RawModbus(dut)
    pdu, wait = probe_pdu(dut), response_time_s(dut)
    answer = raw.send_frame(rtu(pdu, raw.unit, good_crc=False), wait_s=wait, what="RTU: bad CRC")
    check.measure(Msg("bad CRC: {hex}", hex=answer.sent.hex()), answer.describe(), passed=not answer.answered,
                  limit=Msg("no answer within {wait:g} s", wait=wait))
    answer = raw.send_frame(rtu(pdu, raw.unit), what="RTU: sound CRC")
    check.measure(Msg("sound CRC: {hex}",
                      hex=answer.sent.hex()), answer.describe(), passed=_valid_answer_to(answer, pdu[0]),
                  limit=Msg("a valid answer"))
    raw.close()
    check.require()
