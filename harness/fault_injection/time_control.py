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
from collections.abc import Iterator
from typing import Any

from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive


class TimeControl(ABC):
    fast: bool = False

    @abstractmethod
    def elapse(self, seconds: float) -> None:
        """Let ``seconds`` of device time pass (with the DUT metering as usual)."""

    def steps(self, seconds: float, grain_s: float) -> Iterator[float]:
        """Let ``seconds`` of device time pass in steps of at most ``grain_s``, yielding after each the device
        seconds passed so far: the moments a check looks at the DUT (and at the truth) while time passes."""
        done = 0.0
        while done < seconds:
            step = min(grain_s, seconds - done)
            self.elapse(step)
            done += step
            yield done

    def device_now(self) -> float:
        """The DUT's physical time now, as a Unix time (the harness's clock plus ``world_offset_s``)."""
        return time.time() + self.world_offset_s()

    def world_offset_s(self) -> float:
        """How far the DUT's physical time runs ahead of the harness's clock: 0 for a real device, the device
        time a simulator was fast-forwarded. The reference a clock the harness cannot set is judged against."""
        return 0.0

    def synthesize_events(self, days: float, per_day: float) -> int:
        """Let ``days`` of device time pass with ``per_day`` routine events logged (how many were): a year of
        audit history for a retention check. Only a simulator can; anything else is INCONCLUSIVE."""
        raise Inconclusive(Msg("{days:g} days of logged events need a DUT that can synthesize its own history (a "
                               "simulator's control channel); on a real device retention follows from capacity ÷ "
                               "rate", days=days))


class WallTime(TimeControl):
    """A real device: time passes at one second per second."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s

    def elapse(self, seconds: float) -> None:
        if seconds > self.max_wait_s:
            raise Inconclusive(Msg("needs {seconds:g} s of device time but the rig allows waiting at most "
                                   "{max_wait_s:g} s (timing.max_wall_wait_s) and the DUT has no time control",
                                   seconds=seconds, max_wait_s=self.max_wait_s))
        time.sleep(max(0.0, seconds))

    def steps(self, seconds: float, grain_s: float) -> Iterator[float]:
        self.elapse(seconds if seconds > self.max_wait_s else 0.0)  # refused up front, not after the wait
        yield from super().steps(seconds, grain_s)


class SimulatorTime(TimeControl):
    """A simulator's control channel: JSON lines on loopback."""

    fast = True

    def __init__(self, host: str, port: int, timeout_s: float = 15.0) -> None:
        # 15 s: an advance saves the device's NVM (fsync) and may close many intervals; on a loaded CI
        # machine 5 s was seen to run out — the channel is the bench's, its silence no device verdict.
        self.host, self.port, self.timeout_s = host, port, timeout_s

    def request(self, **req: Any) -> dict[str, Any]:
        from harness.bench import BenchError

        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as s:
                s.sendall(json.dumps(req).encode() + b"\n")
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
        except OSError as exc:
            raise BenchError(f"the simulator's control channel {self.host}:{self.port} did not answer "
                             f"{req.get('op')!r} within {self.timeout_s:g} s: {exc}") from exc
        reply = json.loads(buf or b"{}")
        if not reply.get("ok"):
            raise RuntimeError(f"simulator control refused {req}: {reply.get('error', 'no reply')}")
        return reply

    def elapse(self, seconds: float) -> None:
        self.request(op="advance", seconds=seconds)

    def world_offset_s(self) -> float:
        sent = time.time()
        reply = self.request(op="status")
        if "physical" not in reply:
            return 0.0
        return float(reply["physical"]) - (sent + time.time()) / 2

    def synthesize_events(self, days: float, per_day: float) -> int:
        try:
            reply = self.request(op="synthesize_events", days=days, per_day=per_day)
        except RuntimeError as exc:  # a simulator without the op (the meters log their own events)
            raise Inconclusive(Msg("this simulator cannot synthesize event history: {exc}", exc=exc)) from None
        return int(reply.get("generated", 0))
