"""Availability (cl. 67, 73): what the rig asks of a soak, and what a profile may declare for it.

The Rules ask an automated system to be available at least 99 % of the time. The harness measures
it the way a head-end sees it: it polls every declared quantity at an interval for a while and
counts the polls the device answered. How long and how often is the lab's choice (the rig's
``availability`` block: seconds in CI, 36–72 hours in a lab); the 99 % is the Rules' and a rig may
only raise it. A rig may also schedule link faults during the soak, to see the device recover —
their windows are the harness's doing and are excluded from the device's availability.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.config.modbus_types import Strict

RULES_MIN_AVAILABILITY_PCT = 99.0  # cl. 67 and 73: "не менее 99 %"
MAX_SOAK_S = 30 * 86400.0  # a month: longer is a field trial, not a bench soak


class LinkFault(Strict):
    """One link fault of the soak's schedule, in seconds from the soak's start."""

    at_s: float = Field(ge=0, description="when the fault begins, seconds after the soak started")
    kind: Literal["cut", "blackhole"] = Field(
        description="cut: connections reset and refused; blackhole: everything silently swallowed (timeouts)")
    for_s: float = Field(gt=0, description="how long the link stays faulted")

    @property
    def end_s(self) -> float:
        return self.at_s + self.for_s


class AvailabilitySoak(Strict):
    """The rig's ``availability:`` block — the soak of the availability suite."""

    duration_s: float = Field(30.0, gt=0, le=MAX_SOAK_S, description="how long the soak polls (CI: tens of "
                              "seconds; a lab certifying: 36-72 hours, 129600-259200)")
    interval_s: float | None = Field(None, gt=0, le=3600, description="seconds between polls; default: the "
                                     "profile's declared `availability.polling_interval_s`, else 1 s")
    target_pct: float = Field(RULES_MIN_AVAILABILITY_PCT, le=99.99,
                              description="availability to reach; never below the Rules' 99 %, a lab may raise it")
    link: Literal["main", "upstream_main", "upstream_reserve"] = Field(
        "main", description="which link the faults act on: the DUT's main transport (`link: proxy | netns` on the "
        "DUT) or an upstream channel's proxy (a pushing DUT)")
    link_faults: list[LinkFault] = Field(default_factory=list, description="faults during the soak; their "
                                         "windows are excluded from the availability and judged by KZ-73-01")

    @field_validator("target_pct")
    @classmethod
    def _rules_minimum(cls, v: float) -> float:
        if v < RULES_MIN_AVAILABILITY_PCT:
            raise ValueError(f"{v:g} % is below the Rules' {RULES_MIN_AVAILABILITY_PCT:g} % (cl. 67, 73): a lab may "
                             "raise the target, never lower it")
        return v

    @model_validator(mode="after")
    def _check(self) -> AvailabilitySoak:
        if self.interval_s is not None and self.interval_s > self.duration_s:
            raise ValueError(f"interval_s {self.interval_s:g} is longer than duration_s {self.duration_s:g}")
        previous: LinkFault | None = None
        for fault in sorted(self.link_faults, key=lambda f: f.at_s):
            if fault.end_s > self.duration_s:
                raise ValueError(f"the link fault at {fault.at_s:g} s lasts until {fault.end_s:g} s, after the "
                                 f"soak ends (duration_s {self.duration_s:g})")
            if previous is not None and fault.at_s < previous.end_s:
                raise ValueError(f"link faults overlap: {previous.at_s:g}+{previous.for_s:g} s and {fault.at_s:g} s")
            previous = fault
        return self

    def interval_for(self, declared: DeclaredAvailability | None) -> float:
        """Seconds between polls for a device with these declarations."""
        if self.interval_s is not None:
            return self.interval_s
        if declared is not None and declared.polling_interval_s is not None:
            return min(declared.polling_interval_s, self.duration_s)
        return min(1.0, self.duration_s)

    @property
    def schedule(self) -> list[LinkFault]:
        return sorted(self.link_faults, key=lambda f: f.at_s)


class DeclaredAvailability(Strict):
    """What a profile may declare about how the device is polled and how fast it recovers."""

    polling_interval_s: float | None = Field(None, gt=0, le=3600, description="the interval at which the "
                                             "device is meant to be polled (its data refresh period)")
    recovery_s: float | None = Field(None, gt=0, le=3600, description="after a link fault ends, the device "
                                     "answers again within this many seconds")
