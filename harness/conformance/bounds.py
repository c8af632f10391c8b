"""Limits a device's own declaration may tighten but never loosen (issue 14).

A profile says what a device claims about itself (its clock's accuracy, how closely its journal stamps
events). A check may hold a device to a tighter figure it declares, but never to a looser one than the
Rules, a standard or the device's accuracy class allow: each bound here names its source. A profile that
declares something looser is not a configuration error (the device may be fine) — the check uses the bound
and records that it did, so the evidence shows which figure judged the device.

The Rules themselves (cl. 95, 96: "non-volatile memory ... with the fixing of date and time"; cl. 97:
journals that "record, register, store and transmit events") ask for date, time and event stamps but give
no figure, so the figures come from the standards for metering and event-recording equipment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.reporting.texts import Msg


@dataclass(frozen=True)
class Bound:
    """The loosest limit a declaration may set for one quantity, and where that comes from."""

    field: str  # the profile field that declares the figure
    value: float
    unit: str
    source: str

    def limit(self, check: Any, declared: float) -> float:
        """The figure the check judges by: the declared one if it is at least as tight as the bound, else the
        bound — and then a note in the evidence that the declaration was set aside, and why."""
        if declared <= self.value:
            return declared
        name = Msg("{field} declared", field=self.field)
        if any(m.name == name for m in check.measurements):  # said once per check, however often it is used
            return self.value
        check.measure(name, declared, passed=True, unit=self.unit,
                      limit=Msg("≤ {value:g} ({source})", value=self.value, source=self.source),
                      note=Msg("looser than the bound: judged by {value:g} {unit} instead", value=self.value,
                               unit=self.unit))
        return self.value


CLOCK_DRIFT = Bound(
    "clock.max_drift_s_per_day", 0.5, "s/day",
    Msg("IEC 62054-21 time-keeping of a crystal-controlled time switch, ±0.5 s/24 h at reference conditions — the "
        "accuracy IEC 62052-21 asks of the tariff clock of a meter"))

EVENT_TIMESTAMP = Bound(
    "timestamp_tolerance_s", 5.0, "s",
    "IEC 61000-4-30 class S: time-clock uncertainty of event time-stamps ±5 s")

# After a power cut a stopped clock must lie well outside the clock tolerance: the cut lasts at least
# this many tolerances plus the margin (a clock that stopped while unpowered has lost the whole off time).
OFF_TIME_PER_TOLERANCE = 2.0
OFF_TIME_MARGIN_S = 1.0


def clock_cut_off_time(declared_off_s: float, clock_tolerance_s: float) -> float:
    """How long the power stays off in the clock's power-cut check: the rig's off time, lengthened so that a
    clock that stops while unpowered is out by more than twice the tolerance (and never inside it by luck)."""
    return max(declared_off_s, OFF_TIME_PER_TOLERANCE * clock_tolerance_s + OFF_TIME_MARGIN_S)
