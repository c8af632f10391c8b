"""The control channel only simulators have: JSON lines over loopback TCP.

It is how a test makes a day of device time pass in a second, or flips a tamper input. Real
devices have no such door, so suites never rely on it directly — they go through the harness's
time control, which falls back to waiting on a real device.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_control(host: str, port: int, handler: Handler) -> asyncio.Server:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    reply = await handler(request)
                except Exception as exc:  # a bad request must not kill the device
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(client, host, port, reuse_address=True)


DAY_S = 86400.0
MAX_ADVANCE_S = 400 * DAY_S  # a year and a bit: every retention check fits, a typo of a million days does not


def advance_seconds(req: dict[str, Any]) -> float:
    """The ``seconds`` of an ``advance`` request, checked (every simulator's control channel takes it)."""
    seconds = float(req["seconds"])
    if not 0 <= seconds <= MAX_ADVANCE_S:
        raise ValueError("advance takes 0..400 days")
    return seconds
