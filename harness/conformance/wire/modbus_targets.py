"""Where to aim a probe on a Modbus DUT, worked out from its profile alone: a declared point per table, a
register no declaration covers, a writable one-register point, the answer time the device owes."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from harness.verdicts import NotApplicable

TABLE_OF_FC = {3: "holding", 4: "input"}


@dataclass(frozen=True)
class Target:
    name: str
    address: int
    count: int


def modbus_map(dut: Any) -> Any:
    if dut.profile.modbus is None:
        raise NotApplicable(f"{dut.name} speaks {dut.profile.protocol}, not Modbus: the Modbus checks do not apply")
    return dut.profile.modbus


def response_time_s(dut: Any) -> float:
    """The declared longest answer time (``modbus.response_time_s`` / ``opcua.response_time_s``), else the rig's
    request timeout."""
    declared = getattr(dut.profile.modbus or getattr(dut.profile, "opcua", None), "response_time_s", None)
    return declared or dut.timing.request_timeout_s


def declared_point(dut: Any, table: str) -> Target | None:
    """The declared point (or setting) with the lowest address in ``table``."""
    m = modbus_map(dut)
    found = sorted((p.address, name, p.register_count) for name, p in {**m.points, **m.settings}.items()
                   if p.table.value == table)
    if not found:
        return None
    address, name, count = found[0]
    return Target(name, address, min(count, m.max_registers_per_request))


def unmapped_address(dut: Any, table: str) -> int:
    """The lowest register address of ``table`` that no declaration covers (points, settings, clock, record
    stores, unlock register)."""
    m = modbus_map(dut)
    taken = sorted((a, a + n) for t, a, n, _ in m.spans() if t.value == table)
    address = 0
    for start, end in taken:
        if address < start:
            break
        address = max(address, end)
    return address


def writable_register(dut: Any) -> Target | None:
    """A declared writable one-register holding point or setting (written back with its own value)."""
    m = modbus_map(dut)
    for name, p in sorted({**m.settings, **m.points}.items(), key=lambda item: item[1].address):
        if p.writable and p.table.value == "holding" and p.register_count == 1:
            return Target(name, p.address, 1)
    return None


def guarded(dut: Any, target: Target) -> bool:
    """Does the profile's write protection guard this target (so a session must be opened first)?"""
    wp = dut.profile.modbus.write_protection
    return wp is not None and wp.guards("settings") and target.name in dut.profile.modbus.settings


def probe_pdu(dut: Any) -> bytes:
    """A valid read request for this DUT: its first declared point, by the first declared read function."""
    from harness.verdicts import Inconclusive

    m = modbus_map(dut)
    codes = m.served_function_codes(dut.profile.clock is not None and dut.profile.clock.writable)
    for fc, table in TABLE_OF_FC.items():
        target = declared_point(dut, table)
        if target is not None and fc in codes:
            return struct.pack(">BHH", fc, target.address, target.count)
    raise Inconclusive("the profile declares no readable register (FC3/FC4) to frame a valid request with")
