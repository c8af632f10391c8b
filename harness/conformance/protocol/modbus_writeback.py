"""Write function codes exercised without changing anything: a declared writable point is read, then written
back with its own value (FC05 / FC06 for one coil or register, FC15 / FC16 for a block — a u32 or u64 point, a
clock —, FC22 as a mask write that keeps every bit, FC23 writing and reading it in one request), the answer
judged, and the point read again to show it holds what it held.

The clock is the last choice: its own value written back sets it back by the time between the read and the
write (at most its resolution plus one exchange), which the evidence says.
"""

from __future__ import annotations

import struct
from typing import Any

from harness.conformance.wire.modbus_raw import (
    Answer,
    RawModbus,
    read_pdu,
    write_coil_pdu,
    write_coils_pdu,
    write_multiple_pdu,
    write_single_pdu,
)
from harness.conformance.wire.modbus_targets import Target, guarded, writable_point
from harness.devices.api import WriteGuarded
from harness.reporting.texts import Msg

COIL_ON = 0xFF00


def _values(answer: Answer, target: Target) -> list[int] | None:
    """The point's registers (or its one bit) from a read's answer; None when the answer is not one."""
    pdu = answer.pdu
    if target.table == "coil":
        ok = answer.function_code == 1 and len(pdu) == 3 and pdu[1] == 1
        return [pdu[2] & 1] if ok else None
    n = target.count
    if answer.function_code != 3 or len(pdu) != 2 + 2 * n or pdu[1] != 2 * n:
        return None
    return list(struct.unpack(f">{n}H", pdu[2:]))


def _request(fc: int, target: Target, values: list[int]) -> tuple[bytes, bytes]:
    """The write request carrying ``values`` and the answer the specification asks for (mostly an echo)."""
    address = target.address
    if fc == 5:
        pdu = write_coil_pdu(address, COIL_ON if values[0] else 0)
    elif fc == 15:
        pdu = write_coils_pdu(address, values)
    elif fc == 6:
        pdu = write_single_pdu(address, values[0])
    elif fc == 22:  # mask write: (value AND 0xFFFF) OR (0x0000 AND NOT 0xFFFF) = value
        pdu = struct.pack(">BHHH", 22, address, 0xFFFF, 0x0000)
    elif fc == 23:  # read/write multiple: the write is done before the read, so the read shows the value
        n = len(values)
        pdu = struct.pack(f">BHHHHB{n}H", 23, address, n, address, n, 2 * n, *values)
        return pdu, struct.pack(f">BB{n}H", 23, 2 * n, *values)
    else:
        pdu = write_multiple_pdu(address, values)
    return pdu, pdu if fc in (5, 6, 22) else pdu[:5]


def write_back(dut: Any, check: Any, raw: RawModbus, fc: int, untried: list[str]) -> None:
    """FC05 / FC06 / FC15 / FC16 of a writable point's own current value: the device must echo the request,
    and the point must hold the same value afterwards."""
    table = "coil" if fc in (5, 15) else "holding"
    target = writable_point(dut, table, single=fc in (5, 6, 22))
    if target is None:
        what = "coil" if table == "coil" else "one-register holding point or setting" if fc in (6, 22) else \
            "holding point, setting or clock"
        untried.append(f"FC{fc:02d}: no writable {what} declared")
        return
    read_fc = 1 if table == "coil" else 3
    before = raw.request(read_pdu(read_fc, target.address, target.count), what=f"read {target.name} before FC{fc:02d}")
    values = _values(before, target)
    if values is None:
        untried.append(f"FC{fc:02d}: {target.name} could not be read first ({before.describe()})")
        return
    if guarded(dut, target) and isinstance(dut.device, WriteGuarded):
        dut.device.unlock()  # the profile protects it: open the write session the lab's way
    pdu, echo = _request(fc, target, values)
    shown = ", ".join(map(str, values))
    answer = raw.request(pdu, what=f"FC{fc:02d} {target.name} = {shown} (its own value)")
    check.measure(Msg("FC{fc:02d} write of {name} ({count} at {address}) with its own value {shown}", fc=fc,
                      name=target.name, count=target.count, address=target.address,
                      shown=shown), answer.describe(), passed=answer.pdu == echo, limit=Msg("answer {hex}",
                                                                                            hex=echo.hex()),
                  note=Msg("sent {hex}, got {value}", hex=pdu.hex(), value=answer.pdu.hex() or 'nothing'))
    if target.name == "clock":
        check.measure(Msg("{name} after FC{fc:02d}", name=target.name,
                          fc=fc), Msg("not compared"), passed=True, limit=Msg("N/A: a clock moves"),
                      note=Msg("written back with the value just read: set back by at most one exchange and its "
                               "resolution"))
        return
    after = _values(raw.request(read_pdu(read_fc, target.address, target.count),
                                what=f"read {target.name} after FC{fc:02d}"), target)
    check.equal(Msg("{name} after FC{fc:02d} (unchanged)", name=target.name, fc=fc),
                Msg("no answer") if after is None else
                ", ".join(map(str, after)), shown)
