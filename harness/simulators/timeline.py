"""Simulated time: the physical timeline that drives energy, and the device's real-time clock.

Physical time is what the load integrates over; it runs with wall time (times a speed factor)
and can be fast-forwarded through the control channel, so hours of device time take seconds.
The RTC is the device's idea of local time: physical time plus an offset the user sets, plus
the drift of its crystal. A power cut stops metering but not the RTC (it has a battery), so on
power-on physical time resumes from the wall clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Timeline:
    anchor_phys: float
    anchor_wall: float
    speed: float = 1.0
    rtc_offset: float = 0.0  # local device time = physical + offset (+ drift)
    drift: float = 0.0  # fractional rate error of the RTC crystal (seeded defect only)
    drift_anchor_phys: float = 0.0

    @classmethod
    def fresh(cls, utc_offset_s: float) -> Timeline:
        """A new device: physical time is UTC now, the RTC shows local time."""
        now = time.time()
        return cls(anchor_phys=now, anchor_wall=now, rtc_offset=utc_offset_s, drift_anchor_phys=now)

    def physical(self, wall: float | None = None) -> float:
        wall = time.time() if wall is None else wall
        return self.anchor_phys + (wall - self.anchor_wall) * self.speed

    def rtc(self, phys: float | None = None) -> float:
        """Device local time as seconds since 1970-01-01 00:00 *local*."""
        phys = self.physical() if phys is None else phys
        return phys + self.rtc_offset + self.drift * (phys - self.drift_anchor_phys)

    def phys_for_rtc(self, local: float, after_phys: float) -> float:
        """Inverse of rtc(): the physical time at which the RTC shows ``local``."""
        base = self.rtc(after_phys)
        return after_phys + (local - base) / (1.0 + self.drift)

    def set_rtc(self, local: float) -> None:
        phys = self.physical()
        self.rtc_offset = local - phys
        self.drift_anchor_phys = phys

    def set_speed(self, speed: float) -> None:
        wall = time.time()
        self.anchor_phys = self.physical(wall)
        self.anchor_wall = wall
        self.speed = speed

    def advance(self, seconds: float) -> None:
        self.anchor_phys += seconds

    def to_state(self) -> dict[str, Any]:
        wall = time.time()
        return {"phys": self.physical(wall), "wall": wall, "rtc_offset": self.rtc_offset,
                "drift_anchor_phys": self.drift_anchor_phys}

    @classmethod
    def from_state(cls, s: dict[str, Any], drift: float) -> Timeline:
        """After power-on: the battery-backed RTC kept running in wall time while power was off."""
        return cls(anchor_phys=s["phys"], anchor_wall=s["wall"], speed=1.0, rtc_offset=s["rtc_offset"],
                   drift=drift, drift_anchor_phys=s["drift_anchor_phys"])
