"""The heating circuit the controller runs: a cheap first-order model, advanced in device time.

A secondary heating circuit behind a mixing valve: with the circulation pump running, the supply
temperature follows its setpoint (itself approached at the configured ramp rate) with a time
constant of minutes, the return temperature lies below it by the heat the radiators give off, and
the pump builds the configured differential pressure on top of the static pressure. With the pump
stopped the circuit cools towards the room and the pressure falls back to static. Exponential
steps make any step length exact, so a year of ``advance`` costs one step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

AMBIENT_C = 20.0
STATIC_BAR = 2.0
TAU_HEAT_S = 120.0
TAU_COOL_S = 1800.0
TAU_PRESSURE_S = 5.0
FACTORY_CONFIG = {"supply_setpoint": 70.0, "pressure_setpoint": 0.8, "ramp_rate": 2.0,
                  "high_temperature_limit": 95.0}


@dataclass
class HeatingCircuit:
    config: dict[str, float] = field(default_factory=lambda: dict(FACTORY_CONFIG))
    pump_running: bool = True
    supply_c: float = 65.0
    target_c: float = 65.0  # the setpoint as the ramp has let it move so far
    dp_bar: float = 0.8
    last: float = 0.0  # device time (physical seconds) of the last step

    def setting(self, name: str) -> float:
        return self.config.get(name, FACTORY_CONFIG.get(name, 0.0))

    def advance_to(self, now: float) -> None:
        dt = now - self.last
        if dt <= 0:
            return
        self.last = now
        setpoint = self.setting("supply_setpoint")
        ramp = self.setting("ramp_rate") / 60.0 * dt
        self.target_c += max(-ramp, min(ramp, setpoint - self.target_c))
        if self.pump_running:
            self.supply_c += (self.target_c - self.supply_c) * (1.0 - math.exp(-dt / TAU_HEAT_S))
            dp_goal = self.setting("pressure_setpoint")
        else:
            self.supply_c += (AMBIENT_C - self.supply_c) * (1.0 - math.exp(-dt / TAU_COOL_S))
            dp_goal = 0.0
        self.dp_bar += (dp_goal - self.dp_bar) * (1.0 - math.exp(-dt / TAU_PRESSURE_S))

    def outdoor_c(self, local_time: float) -> float:
        """A winter day: coldest at 05:00 local, warmest at 17:00."""
        return -8.0 + 6.0 * math.sin(2 * math.pi * ((local_time % 86400.0) / 86400.0 - 11 / 24))

    def values(self, local_time: float) -> dict[str, float | bool]:
        spread = 0.3 * max(0.0, self.supply_c - AMBIENT_C) if self.pump_running else 1.0
        valve = max(0.0, min(100.0, 20.0 + 1.5 * (self.target_c - self.supply_c + spread))) \
            if self.pump_running else 0.0
        return {"supply_temperature": round(self.supply_c, 3), "return_temperature": round(self.supply_c - spread, 3),
                "outdoor_temperature": round(self.outdoor_c(local_time), 3),
                "supply_pressure": round(STATIC_BAR + self.dp_bar, 4), "return_pressure": STATIC_BAR,
                "valve_position": round(valve, 2), "pump_running": self.pump_running}

    def over_limit(self) -> bool:
        return self.supply_c > self.setting("high_temperature_limit")
