"""Making device time pass: fast-forward on a simulator, honest waiting on a real device.

Suites ask for "this much device time" and never care which; on a real bench a long window
simply takes long (up to the rig's ``max_wall_wait_s``, beyond which the check is INCONCLUSIVE
rather than silently shortened).
"""

from __future__ import annotations

import json
import socket
import time
from abc import ABC, abstractmethod
from typing import Any

from harness.verdicts import Inconclusive


class TimeControl(ABC):
    fast: bool = False

    @abstractmethod
    def elapse(self, seconds: float) -> None:
        """Let ``seconds`` of device time pass (with the DUT metering as usual)."""


class WallTime(TimeControl):
    """A real device: time passes at one second per second."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s

    def elapse(self, seconds: float) -> None:
        if seconds > self.max_wait_s:
            raise Inconclusive(f"needs {seconds:g} s of device time but the rig allows waiting at most "
                               f"{self.max_wait_s:g} s (timing.max_wall_wait_s) and the DUT has no time control")
        time.sleep(max(0.0, seconds))


class SimulatorTime(TimeControl):
    """A simulator's control channel: JSON lines on loopback."""

    fast = True

    def __init__(self, host: str, port: int, timeout_s: float = 5.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s

    def request(self, **req: Any) -> dict[str, Any]:
        with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as s:
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        reply = json.loads(buf or b"{}")
        if not reply.get("ok"):
            raise RuntimeError(f"simulator control refused {req}: {reply.get('error', 'no reply')}")
        return reply

    def elapse(self, seconds: float) -> None:
        self.request(op="advance", seconds=seconds)
