"""Power switches. ``process``: power-off is SIGKILL of the DUT process, power-on relaunches it
with the same state directory — for a simulator exactly what a mains cut is for a meter."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from harness.fault_injection.launcher import DutProcess
from harness.fault_injection.record import FaultLog


class PowerSwitch(ABC):
    @abstractmethod
    def off(self) -> None: ...

    @abstractmethod
    def on(self) -> float:
        """Restore power and wait until the DUT answers; seconds until it did."""

    def cut(self, off_time_s: float) -> tuple[float, float, float]:
        """Off, wait, on. Returns (time off, time on, seconds until ready) in harness wall time."""
        self.off()
        t_off = time.time()
        time.sleep(off_time_s)
        t_on = time.time()
        ready = self.on()
        return t_off, t_on, ready


class ProcessPowerSwitch(PowerSwitch):
    def __init__(self, process: DutProcess, probe: Callable[[], object], faults: FaultLog) -> None:
        self.process = process
        self.probe = probe
        self.faults = faults
        self._event: int | None = None

    def off(self) -> None:
        self._event = self.faults.begin(self.process.name, "power", "off (SIGKILL)", pid=self.process.pid)
        self.process.kill()

    def on(self) -> float:
        self.process.start()
        took = self.process.wait_ready(self.probe)
        if self._event is not None:
            self.faults.end(self._event, ready_after_s=round(took, 3), pid=self.process.pid)
            self._event = None
        return took
