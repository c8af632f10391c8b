"""A DUT's endpoint as the robustness campaigns and ``harness replay`` see it, per protocol: a valid
request (what "served" means), how a reply is framed, the fuzz cases of its protocol, a numbered valid
request for storms (None: the protocol has none that repeats on one connection — OPC UA's Hello). A TCP
endpoint, or a serial line (Modbus RTU: ``serial_port`` set, host and port mean nothing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.conformance.wire.modbus_fuzz import Case, modbus_cases
from harness.conformance.wire.modbus_raw import crc, mbap, rtu, rtu_reply_length
from harness.conformance.wire.modbus_targets import probe_pdu
from harness.conformance.wire.opcua_fuzz import acknowledged, hello, opcua_cases
from harness.conformance.wire.rtu_fuzz import rtu_cases
from harness.conformance.wire.tcp import mbap_length, uatcp_length
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive


@dataclass(frozen=True)
class WireTarget:
    protocol: str
    host: str
    port: int
    probe: bytes
    length: Callable[[bytes], int | None]
    valid: Callable[[bytes | None], bool]
    cases: Callable[[int, int], list[Case]]  # (seed, count)
    request: Callable[[int], bytes] | None
    serial_port: str | None = None  # a serial line: the harness's end of it


def wire_target(dut: Any) -> WireTarget:
    if dut.spec.transport.tcp is None:
        return _line_target(dut)
    host, port = str(dut.endpoint["host"]), int(dut.endpoint["port"])
    if dut.profile.protocol == "modbus":
        unit, pdu = dut.spec.unit_id, probe_pdu(dut)
        return WireTarget(
            "modbus", host, port, mbap(pdu, unit, 0x7E01), mbap_length,
            lambda reply: bool(reply) and len(reply) >= 8 and reply[7] == pdu[0],
            lambda seed, count: modbus_cases(seed, count, unit),
            lambda n: mbap(pdu, unit, (n % 0xFFFF) + 1))
    if dut.profile.protocol == "opcua":
        url = f"opc.tcp://{host}:{port}{dut.profile.opcua.endpoint_path}"
        return WireTarget("opcua", host, port, hello(url), uatcp_length, acknowledged,
                          lambda seed, count: opcua_cases(seed, count, url), None)
    if dut.profile.protocol == "dlms":
        from harness.conformance.wire.dlms_targets import wrapper_target

        return wrapper_target(dut, WireTarget)
    if getattr(dut.profile, "amr", None) is not None and dut.profile.protocol == "amr":  # the built-in REST adapter
        from harness.conformance.wire.http_targets import amr_target

        return amr_target(dut, WireTarget)
    raise Inconclusive(Msg("no robustness frames for protocol {protocol!r}", protocol=dut.profile.protocol))


def _line_target(dut: Any) -> WireTarget:
    """The rig's serial line: DLMS/COSEM over HDLC (dlms_targets), or Modbus RTU — frames carry the unit id and a
    CRC, a reply is valid when its function code is the request's and its CRC holds."""
    if dut.profile.protocol == "dlms":
        from harness.conformance.wire.dlms_targets import hdlc_target

        return hdlc_target(dut, WireTarget)
    if dut.profile.protocol != "modbus":
        raise Inconclusive(Msg("no robustness frames for protocol {protocol!r} on a serial line",
                               protocol=dut.profile.protocol))
    unit, pdu = dut.spec.unit_id, probe_pdu(dut)
    probe = rtu(pdu, unit)

    def valid(reply: bytes | None) -> bool:
        return bool(reply) and len(reply) >= 4 and reply[1] == pdu[0] and crc(reply[:-2]) == reply[-2:]

    port = str(dut.endpoint["serial_port"])
    return WireTarget("modbus-rtu", port, 0, probe, rtu_reply_length, valid,
                      lambda seed, count: rtu_cases(seed, count, unit), lambda n: probe, serial_port=port)
