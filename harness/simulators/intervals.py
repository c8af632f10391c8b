"""One interval of a load profile, as a simulated device keeps it and as a concentrator pushes it.

A load profile is one record per capture period (15 minutes unless the profile declares another):
the interval's end time, the energy increments of the four channels (A+, A−, R+, R−), the register
totals at the end, and status flags — the power failed during the interval, the clock was changed,
the data are invalid. Meters keep it in non-volatile memory; a data concentrator reads it and
pushes each record upstream (MQTT, JSON below). Both sides of the simulators use this one record;
the harness reads it through the Device API (Modbus layout from the profile) or as a head-end
subscribing to the brokers, and decodes it with its own code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import IntFlag

CHANNELS = ("active_import", "active_export", "reactive_import", "reactive_export")


class IntervalStatus(IntFlag):
    """Status bits of an interval record (DLMS-style, as most meters keep them)."""

    POWER_FAILED = 1  # the supply failed during (part of) the interval
    CLOCK_CHANGED = 2  # the clock was set during the interval
    INVALID = 4  # the data of the interval are not reliable


@dataclass
class IntervalRecord:
    """``end``: device time (unix seconds, UTC) at which the interval closed — a multiple of the period.

    ``increments`` and ``totals`` are in Wh / varh (integers, the meter's counting resolution);
    ``seq`` counts records from 1 and never repeats, so a receiver can see gaps and duplicates.
    """

    seq: int
    end: int
    period_s: int
    increments: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    status: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> IntervalRecord:
        data = json.loads(text)
        return cls(seq=int(data["seq"]), end=int(data["end"]), period_s=int(data["period_s"]),
                   increments={k: int(v) for k, v in data.get("increments", {}).items()},
                   totals={k: int(v) for k, v in data.get("totals", {}).items()}, status=int(data.get("status", 0)))
