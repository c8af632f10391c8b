"""Alarms on demand, for the controller journal's trigger matrix (cl. 69: abnormal situations are logged).

On a simulator through its control channel; a real bench would wire a relay to a digital alarm
input, or drive an analogue input past its limit — another injector of kind ``alarm`` behind the
same method, registered by a plugin. A rig with none has no alarm injector, and the alarm kind is
then INCONCLUSIVE, never PASS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from harness.fault_injection.record import FaultLog
from harness.fault_injection.time_control import SimulatorTime


class AlarmInput(ABC):
    @abstractmethod
    def raise_alarm(self, name: str, message: str) -> None:
        """Make the device raise (and log) one alarm; ``name`` says what it concerns where the device lets us."""


class SimulatorAlarm(AlarmInput):
    """The simulator's control-channel ``alarm`` op (recorded in faults.jsonl like every injected fault)."""

    def __init__(self, host: str, port: int, faults: FaultLog | None = None, dut: str = "") -> None:
        self._channel = SimulatorTime(host, port)
        self.faults, self.dut = faults, dut

    def raise_alarm(self, name: str, message: str) -> None:
        if self.faults is None:
            self._channel.request(op="alarm", name=name, message=message)
            return
        event = self.faults.begin(self.dut, "alarm", name, message=message)
        try:
            self._channel.request(op="alarm", name=name, message=message)
        finally:
            self.faults.end(event)
