"""A DLMS/COSEM meter as the robustness campaigns see it: the TCP wrapper (a public client's AARQ is the valid
request, an AARE the valid answer) or HDLC on the rig's serial line (a SNRM, a UA). The addresses are the
profile's (logical device, HDLC physical address, the public client's SAP), never the simulator's."""

from __future__ import annotations

from typing import Any

from harness.conformance.wire.dlms_fuzz import (
    PROBE_AARQ,
    SNRM,
    _address,
    hdlc_answered,
    hdlc_cases,
    hdlc_frame,
    hdlc_reply_length,
    wrapper,
    wrapper_cases,
    wrapper_length,
)


def public_sap(dut: Any) -> int:
    """The client SAP the fuzzer speaks as: the public client's (else the reading association's)."""
    dlms = dut.profile.dlms
    return dlms.associations[dlms.public() or dlms.reads_with].client_sap


def wrapper_target(dut: Any, target: type) -> Any:
    dlms, client = dut.profile.dlms, public_sap(dut)
    server = dlms.server_logical_address
    probe = wrapper(PROBE_AARQ, client, server)

    def valid(reply: bytes | None) -> bool:
        return bool(reply) and len(reply) >= 9 and reply[:2] == b"\x00\x01" and reply[8] == 0x61  # an AARE

    return target("dlms", str(dut.endpoint["host"]), int(dut.endpoint["port"]), probe, wrapper_length, valid,
                  lambda seed, count: wrapper_cases(seed, count, server, client), lambda n: probe)


def hdlc_target(dut: Any, target: type) -> Any:
    dlms, client = dut.profile.dlms, public_sap(dut)
    logical, physical = dlms.server_logical_address, dlms.hdlc.physical_address
    probe = hdlc_frame(_address(logical, physical), _address(client, None), SNRM)
    port = str(dut.endpoint["serial_port"])
    return target("dlms-hdlc", port, 0, probe, hdlc_reply_length, hdlc_answered,
                  lambda seed, count: hdlc_cases(seed, count, logical, physical, client), lambda n: probe,
                  serial_port=port)
