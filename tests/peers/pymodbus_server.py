"""A Modbus/TCP reference peer on plain pymodbus 3.16 — ``ModbusTcpServer`` over pymodbus's own simple
datastore, nothing of tek-harness in it — as a lab would stand up a pymodbus device.

Usage: ``python pymodbus_server.py PORT``; prints "ready" once listening, runs until killed by PID.

Map (tests/data/pymodbus-peer.yaml declares a part of it and reserves the rest): a sparse holding table —
0..15 hold 3000 + address, except 2 = 247 (an undeclared vendor setting) and 4..5 a writable u32; 100..103
hold 0 — so 16..99 do not exist; input registers 0..7 = 4000 + address; coils 0..7 and discrete inputs 0..7
alternate.
"""

from __future__ import annotations

import asyncio
import sys

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSparseDataBlock,
)
from pymodbus.server import ModbusTcpServer


def context() -> ModbusServerContext:
    holding = {a: 3000 + a for a in range(16)} | {2: 247, 4: 0x6553, 5: 0xF100} | {a: 0 for a in range(100, 104)}
    device = ModbusDeviceContext(
        hr=ModbusSparseDataBlock(holding),
        ir=ModbusSequentialDataBlock(1, [4000 + a for a in range(8)]),
        co=ModbusSequentialDataBlock(1, [a % 2 for a in range(8)]),
        di=ModbusSequentialDataBlock(1, [(a + 1) % 2 for a in range(8)]))
    return ModbusServerContext(devices=device, single=True)


async def main(port: int) -> None:
    server = ModbusTcpServer(context(), address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    for _ in range(100):  # bounded: the listener is up within a second on any machine this runs on
        if server.transport is not None:
            break
        await asyncio.sleep(0.02)
    print("ready", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
