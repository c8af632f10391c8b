"""Tamper inputs (meter cover, magnetic field) for the journal suite's trigger matrix.

On a simulator they are set through its control channel; a real bench would wire a relay to
the cover switch or bring a magnet — a different injector behind the same two methods. A rig
with neither has no tamper injector, and the kinds only a tamper input provokes are then
INCONCLUSIVE, never PASS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from harness.fault_injection.time_control import SimulatorTime


class TamperInput(ABC):
    @abstractmethod
    def inputs(self) -> list[str]:
        """Names of the inputs this injector can drive (``cover``, ``magnetic_field``)."""

    @abstractmethod
    def set(self, name: str, active: bool) -> None:
        """Open the cover / apply the field (active) or undo it."""


class SimulatorTamper(TamperInput):
    """The simulator's control-channel ``tamper`` op."""

    def __init__(self, host: str, port: int) -> None:
        self._channel = SimulatorTime(host, port)

    def inputs(self) -> list[str]:
        from harness.events import TAMPER_INPUTS

        return list(TAMPER_INPUTS)

    def set(self, name: str, active: bool) -> None:
        self._channel.request(op="tamper", input=name, active=active)
