"""Energy metering of the simulated meter: pulse counters per channel, split by tariff.

Like a real meter's metrology chip, energy is counted in whole register steps with the
fractional remainder carried; each step goes to the total and to the tariff active at that
moment of device local time. Total therefore always equals the sum of the tariffs exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.simulators.timeline import Timeline

DAY = 86400.0


@dataclass
class ChannelCounter:
    step: float  # canonical units (Wh or varh) per count
    total: int = 0
    tariffs: list[int] = field(default_factory=list)
    pending: float = 0.0  # fraction of a step not yet counted

    def add(self, energy: float, tariff: int) -> None:
        self.pending += energy / self.step
        whole = math.floor(self.pending)
        if whole > 0:
            self.pending -= whole
            self.total += whole
            self.tariffs[tariff - 1] += whole

    def to_state(self) -> dict[str, Any]:
        return {"total": self.total, "tariffs": list(self.tariffs), "pending": self.pending}


@dataclass
class EnergyMeter:
    """Integrates the load over physical time into per-tariff counters."""

    counters: dict[str, ChannelCounter]
    load: dict[str, float]  # channel -> W or var
    tariff_at: Callable[[float], int]  # local seconds-of-day -> tariff
    boundaries: list[float]  # local seconds-of-day where the tariff may change, sorted
    last_phys: float
    counted: set[str] = field(default_factory=set)  # channels that count (a defect may drop some)
    stuck_tariff: int | None = None
    remap: dict[int, int] = field(default_factory=dict)  # tariff -> register it lands in (a defect)

    def accumulate_to(self, phys: float, timeline: Timeline) -> None:
        """Count energy from the last accumulation up to ``phys``, splitting at tariff switches."""
        t = self.last_phys
        guard = 0
        while t < phys and guard < 100_000:
            guard += 1
            local = timeline.rtc(t)
            sod = local % DAY
            nxt = next((b for b in self.boundaries if b > sod + 1e-9), self.boundaries[0] + DAY)
            seg_end = min(phys, timeline.phys_for_rtc(local - sod + nxt, t))
            if seg_end <= t:  # float corner: never stall
                seg_end = min(phys, t + 1e-3)
            tariff = self.stuck_tariff or self.tariff_at(sod)
            tariff = self.remap.get(tariff, tariff)
            dt = seg_end - t
            for name, counter in self.counters.items():
                if name in self.counted:
                    counter.add(self.load.get(name, 0.0) * dt / 3600.0, tariff)
            t = seg_end
        self.last_phys = max(self.last_phys, phys)

    def snapshot(self) -> dict[str, Any]:
        return {name: c.to_state() for name, c in self.counters.items()}

    def restore(self, state: dict[str, Any]) -> None:
        for name, s in state.items():
            c = self.counters[name]
            c.total, c.tariffs, c.pending = s["total"], list(s["tariffs"]), s["pending"]
