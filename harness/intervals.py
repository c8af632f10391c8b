"""The canonical vocabulary of load profiles (interval data, cl. 31, 30, 60, 80).

A meter keeps one record per capture period: when the interval ended, the energy of each channel
in it, and status flags. Meters encode all of it their own way (DLMS status bytes, vendor bit
maps, kWh or Wh, local or UTC time); a profile maps the device's encoding onto the names below, so
the interval_data suite can ask "was the interval with the power cut flagged?" of any meter. A
sibling of ``events.py`` (the journal's vocabulary) for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from harness.quantities import EnergyChannel


class IntervalFlag(StrEnum):
    """Status of one interval, whatever bit the device keeps it in."""

    POWER_FAILED = "power_failed"  # the supply failed during (part of) the interval
    CLOCK_CHANGED = "clock_changed"  # the clock was set during the interval
    INVALID = "invalid"  # the device marks the interval's data as not reliable


@dataclass(frozen=True)
class IntervalData:
    """One load-profile record as read from a device.

    ``end`` is the end of the interval (aware, UTC); ``increments`` the energy of each channel the
    profile records, in Wh or varh; ``status`` the raw status word as read (evidence for flags the
    profile does not map); ``sequence`` the record number when the device keeps one.
    """

    end: datetime
    increments: dict[EnergyChannel, float]
    flags: frozenset[IntervalFlag] = frozenset()
    status: int = 0
    sequence: int | None = None
