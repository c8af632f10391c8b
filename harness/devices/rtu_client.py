"""The Modbus RTU client the driver uses: pymodbus's synchronous serial client, with two fixes.

**Latency.** pymodbus 3.16's ``ModbusSerialClient`` polls for a reply: it sleeps four character
times (at least 1 ms) between looks at the port and calls a reply complete only when two looks in a
row see the same byte count. Every exchange therefore costs at least eight character times after
the last byte is in — about 9 ms at 9600 Bd, ~115 requests/s, even on a pseudo-terminal where the
reply is there in a fraction of a millisecond. That round trip is the uncertainty of every time
fix the clock checks take. Here a receive blocks on the port (select, through pyserial) until the
first byte of the reply arrives and hands over whatever is there; the RTU framer knows from the
function code and byte count when a frame is complete and asks for more until it is — exactly what
pymodbus's asyncio client does.

**Stale replies.** An RTU reply carries no transaction id: a reply that arrives late (after the
request timed out, or from a DUT that was killed and relaunched mid-exchange) would be taken as
the answer to the next request. The input buffer is emptied on (re)connect and before each
request (pymodbus does the latter), and a reply that does not fit its request — another function
code, another number of registers, another echoed address — is discarded together with whatever
else is waiting, and reported as ``ModbusIOException`` so that the driver reconnects and retries.

Imported only by the driver, when a serial transport is used (pymodbus is heavy).
"""

from __future__ import annotations

from typing import Any

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ModbusPDU

READ_FUNCTIONS = (3, 4)
WRITE_FUNCTIONS = (6, 16)


class RtuSerialClient(ModbusSerialClient):
    """``ModbusSerialClient`` that returns a reply as soon as it is complete and rejects misfits."""

    def connect(self) -> bool:
        fresh = self.socket is None
        if not super().connect():
            return False
        if fresh and self.socket is not None:
            self.socket.reset_input_buffer()  # whatever was on the line belongs to nobody now
        return True

    def recv(self, size: int | None) -> bytes:
        if not self.socket:
            raise ConnectionException(str(self))
        try:
            if size is not None:
                return bytes(self.socket.read(size))
            first = self.socket.read(1)  # blocks until a byte arrives or the timeout passes
            if not first:
                return b""
            waiting = self.socket.in_waiting
            return bytes(first) + (bytes(self.socket.read(waiting)) if waiting else b"")
        except (BlockingIOError, InterruptedError):
            raise
        except OSError:
            self.close()
            raise ConnectionException(str(self)) from None

    def execute(self, no_response_expected: bool, request: ModbusPDU) -> Any:
        response = super().execute(no_response_expected, request)
        if response is None or no_response_expected:
            return response
        problem = mismatch(request, response)
        if problem:
            if self.socket is not None:
                self.socket.reset_input_buffer()
            raise ModbusIOException(f"reply does not fit the request ({problem}); discarded",
                                    function_code=request.function_code, dev_id=request.dev_id)
        return response


def mismatch(request: ModbusPDU, response: ModbusPDU) -> str | None:
    """Why ``response`` cannot be the answer to ``request``, or None if it can."""
    if response.function_code & 0x7F != request.function_code:
        return f"function code {response.function_code} to a request with {request.function_code}"
    if response.isError():
        return None
    if request.function_code in READ_FUNCTIONS and len(response.registers) != request.count:
        return f"{len(response.registers)} registers to a read of {request.count}"
    if request.function_code in WRITE_FUNCTIONS and response.address != request.address:
        return f"write echoed address {response.address}, sent {request.address}"
    if request.function_code == 16 and response.count != request.count:
        return f"write echoed {response.count} registers, sent {request.count}"
    return None
