"""Where to aim a probe on a Modbus DUT, worked out from its profile alone: a declared point per table, an
address no declaration or reserved range covers, an address the profile declares absent, a writable point,
the answer time the device owes."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from harness.config.modbus_types import RegisterTable
from harness.reporting.texts import Msg
from harness.verdicts import NotApplicable

TABLE_OF_FC = {1: "coil", 2: "discrete_input", 3: "holding", 4: "input"}
# The largest quantity a read of each table may ask for (application protocol spec 6.1-6.4).
MAX_READ_QUANTITY = {"coil": 2000, "discrete_input": 2000, "holding": 125, "input": 125}


@dataclass(frozen=True)
class Target:
    name: str
    address: int
    count: int
    table: str = "holding"


@dataclass(frozen=True)
class Pick:
    """An address chosen for a probe, and why it was chosen (the evidence says both)."""

    address: int
    why: str
    declared_absent: bool  # outside the table's declared address_space: the device says it does not exist


def modbus_map(dut: Any) -> Any:
    if dut.profile.modbus is None:
        raise NotApplicable(Msg("{name} speaks {protocol}, not Modbus: the Modbus checks do not apply", name=dut.name,
                                protocol=dut.profile.protocol))
    return dut.profile.modbus


def response_time_s(dut: Any) -> float:
    """The declared longest answer time (``modbus.response_time_s`` / ``opcua.response_time_s`` /
    ``amr.timings.response_time_s``), else the rig's request timeout."""
    amr = getattr(dut.profile, "amr", None)
    declared = getattr(dut.profile.modbus or getattr(dut.profile, "opcua", None) or (amr and amr.timings),
                       "response_time_s", None)
    return declared or dut.timing.request_timeout_s


def declared_point(dut: Any, table: str) -> Target | None:
    """The declared point (or setting) with the lowest address in ``table``."""
    m = modbus_map(dut)
    found = sorted((p.address, name, p.register_count) for name, p in {**m.points, **m.settings}.items()
                   if p.table.value == table)
    if not found:
        return None
    address, name, count = found[0]
    return Target(name, address, min(count, m.max_registers_per_request), table)


def _taken(m: Any, table: RegisterTable) -> list[tuple[int, int]]:
    """[start, end) runs of ``table`` that the profile declares or reserves, merged and sorted."""
    runs = sorted([(a, a + n) for t, a, n, _ in m.spans() if t == table]
                  + [(r.first, r.last + 1) for r in m.reserved_in(table)])
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def unmapped_address(dut: Any, table: str) -> Pick | None:
    """The lowest address of ``table`` that no declaration (points, settings, clock, record stores, unlock
    register) and no reserved range covers — inside the declared address space when there is one, else the
    first address past it. None when every address is declared or reserved."""
    m = modbus_map(dut)
    t = RegisterTable(table)
    space = m.space_of(t)
    address = space.first if space is not None else 0
    for start, end in _taken(m, t):
        if address < start:
            break
        address = max(address, end)
    if space is None or space.covers(address):
        if address > 65535:
            return None
        within = Msg(" inside the declared address_space {describe}", describe=space.describe()) if space else ""
        # Inside the space nothing says the address is absent: the profile may simply not mention it.
        return Pick(address, Msg("the lowest {table} address{within} that no declared point and no reserved range "
                                 "covers", table=table, within=within), False)
    return absent_address(dut, table)


def absent_address(dut: Any, table: str) -> Pick | None:
    """An address of ``table`` the profile declares as not implemented: just past (else just before) the
    declared ``address_space``. None without such a declaration: an undeclared address may still hold a vendor
    setting, and writing there could change it."""
    space = modbus_map(dut).space_of(RegisterTable(table))
    if space is None:
        return None
    if space.last < 65535:
        return Pick(space.last + 1, Msg("the first {table} address past the declared address_space {describe}",
                                        table=table, describe=space.describe()), True)
    if space.first > 0:
        return Pick(space.first - 1, Msg("the last {table} address before the declared address_space {describe}",
                                         table=table, describe=space.describe()), True)
    return None


def writable_point(dut: Any, table: str = "holding", *, single: bool = False) -> Target | None:
    """A declared writable point or setting of ``table`` (one register only when ``single``; else a block of
    several first), preferring settings and points over the clock — written back with its own value, the
    clock would lose the time between the read and the write."""
    m = modbus_map(dut)
    # A block write prefers a point of more than one register: that is what FC15 / FC16 are for.
    for name, p in sorted({**m.settings, **m.points}.items(), key=lambda item: (item[1].register_count == 1,
                                                                                 item[1].address)):
        if p.writable and p.table.value == table and (not single or p.register_count == 1) \
                and p.register_count <= m.max_registers_per_request:
            return Target(name, p.address, p.register_count, table)
    clock = m.clock
    if table == "holding" and not single and clock is not None and dut.profile.clock is not None \
            and dut.profile.clock.writable and clock.table.value == "holding":
        return Target("clock", clock.address, clock.register_count, table)
    return None


def writable_register(dut: Any) -> Target | None:
    """A declared writable one-register holding point or setting (written back with its own value)."""
    return writable_point(dut, "holding", single=True)


def guarded(dut: Any, target: Target) -> bool:
    """Does the profile's write protection guard this target (so a session must be opened first)?"""
    wp = dut.profile.modbus.write_protection
    if wp is None:
        return False
    what = "clock" if target.name == "clock" else "settings" if target.name in dut.profile.modbus.settings else None
    return what is not None and wp.guards(what)


def probe_pdu(dut: Any) -> bytes:
    """A valid read request for this DUT: its first declared point, by the first declared read function."""
    from harness.verdicts import Inconclusive

    m = modbus_map(dut)
    codes = m.served_function_codes(dut.profile.clock is not None and dut.profile.clock.writable)
    for fc in (3, 4, 1, 2):
        target = declared_point(dut, TABLE_OF_FC[fc])
        if target is not None and fc in codes:
            return struct.pack(">BHH", fc, target.address, target.count)
    raise Inconclusive(Msg("the profile declares no readable point (FC1-FC4) to frame a valid request with"))
