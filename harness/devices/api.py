"""The Device API: the only door from the suites to a DUT.

Synchronous, typed and small, so that a suite reads like the requirement it checks. Async
protocol libraries are wrapped once, in a driver. Every value comes back in the canonical unit
of ``harness.quantities`` with the harness times around the exchange, which is what checks need
to bound what a moving counter could have done between two reads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from harness.config.profile import Profile
from harness.events import JournalEntry
from harness.intervals import IntervalData
from harness.reporting.texts import Msg


class DeviceError(Exception):
    """The DUT did not do what was asked. Checks turn it into FAIL (or INCONCLUSIVE) with this text."""


class DeviceUnreachable(DeviceError):
    """No connection could be made (power off, wrong address, cable)."""


class DeviceTimeout(DeviceError):
    """The DUT did not answer within the timeout, after every retry."""


class DeviceRefused(DeviceError):
    """The DUT answered with a protocol exception (e.g. Modbus exception 02 illegal address)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class NotDeclared(DeviceError):
    """The profile does not declare the quantity: the harness cannot know where to look."""


@dataclass(frozen=True)
class Reading:
    """One value as read, in canonical units, with the harness wall-clock times around the read."""

    quantity: str
    value: float | int | str
    unit: str | None
    resolution: float | None  # smallest step the register can show, canonical units
    t_sent: float
    t_received: float
    floating: bool = False  # a floating-point register: its value is rounded, not counted in steps


@dataclass(frozen=True)
class ClockReading:
    """The device clock as an aware datetime, with the harness times around the read."""

    value: datetime
    t_sent: float
    t_received: float
    resolution_s: float


@dataclass(frozen=True)
class Identity:
    serial_number: str | None
    firmware_version: str | None


class Device(ABC):
    """A DUT as the suites see it. Drivers implement it; suites only ever hold this type."""

    def __init__(self, name: str, profile: Profile) -> None:
        self.name = name
        self.profile = profile

    @abstractmethod
    def read_many(self, quantities: Sequence[str]) -> dict[str, Reading]:
        """Read several quantities, batching where the protocol allows (atomic per batch)."""

    def read(self, quantity: str) -> Reading:
        return self.read_many([quantity])[quantity]

    @abstractmethod
    def read_clock(self) -> ClockReading: ...

    @abstractmethod
    def set_clock(self, when: datetime) -> None:
        """Set the device clock to the instant ``when`` (aware), in the device's own time zone."""

    @abstractmethod
    def write(self, quantity: str, value: float | int) -> None:
        """Write a writable quantity (a setting)."""

    def identity(self) -> Identity:
        from harness.quantities import FIRMWARE_VERSION, SERIAL_NUMBER

        wanted = [q for q in (SERIAL_NUMBER, FIRMWARE_VERSION) if self.profile.declares(q)]
        got = self.read_many(wanted) if wanted else {}
        serial = got.get(SERIAL_NUMBER)
        firmware = got.get(FIRMWARE_VERSION)
        return Identity(str(serial.value) if serial else None, str(firmware.value) if firmware else None)

    @abstractmethod
    def read_journal(self) -> list[JournalEntry]:
        """Every entry the event journal holds, oldest first, read over the device's interface.

        Raises NotDeclared when the profile declares no journal (cl. 97 then FAILs: the Rules
        require one of every meter)."""

    def read_load_profile(self) -> list[IntervalData]:
        """Every interval record the load profile holds, oldest first, read over the device's interface.

        Raises NotDeclared when the profile declares no load profile (cl. 31 then FAILs: meters must
        collect data at intervals down to 15 minutes). Not abstract, so drivers written before load
        profiles existed keep working and say so."""
        raise NotDeclared(Msg("{device}: the {name} driver reads no load profile", device=self.name,
                              name=type(self).__name__))

    @abstractmethod
    def probe(self) -> None:
        """The cheapest exchange that proves the DUT answers; raises DeviceError until it does."""

    @abstractmethod
    def settings(self) -> list[str]:
        """Names of the settings the profile declares."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@runtime_checkable
class WriteGuarded(Protocol):
    """What a driver offers for a device that guards writes with a password (cl. 66, 78, 94) — Modbus meters
    with an unlock register today. The driver opens the device's write session with the lab's password by
    itself before a protected write; access-control checks use the rest to do what anyone on the bus could:
    write without the unlock, unlock with a wrong password, write a register the profile does not declare
    writable. Checks ask ``isinstance(device, WriteGuarded)``; a driver without these is not judged by them."""

    def unlock(self, password: str | None = None) -> None:
        """Open a write session with the rig's password, or with ``password`` (any, for negative checks).
        Raises DeviceRefused when the device answers with a protocol exception."""

    def wrong_password(self) -> str:
        """A password of the declared form that is not the lab's."""

    def session_closes_in(self) -> float:
        """Seconds until a write session this driver opened or extended has surely closed; 0 when none can be
        open (none opened, or the link was lost since)."""

    def write(self, quantity: str, value: float | int, *, unlock: bool = True) -> None:
        """``Device.write``; with ``unlock=False`` the driver sends the write as it is, without opening a session."""

    def set_clock(self, when: datetime, *, unlock: bool = True) -> None:
        """``Device.set_clock``; ``unlock`` as for ``write``."""

    def force_write(self, quantity: str, value: float | int) -> None:
        """Write any declared quantity in its own encoding at its own address — writable or not, never
        unlocking: what an intruder would send to, say, an energy register."""
