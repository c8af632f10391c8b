"""Physics of the simulated heat meter: water density, thermal power, and the step counters.

A heat meter (EN 1434) measures the volume of the heat carrier passing its flow sensor and the
flow and return temperatures, and its calculator integrates

    P = q_m * c_p * (t_flow - t_return),    q_m = q_v * rho(t_sensor)

into thermal energy; the mass of the heat carrier is the volume times the density at the
temperature where the volume was measured (here the flow pipe, where the sensor sits).

Sources:
- density of water: G. S. Kell, "Density, thermal expansivity, and compressibility of liquid water
  from 0 °C to 150 °C", J. Chem. Eng. Data 20 (1975) 97-105, eq. 16 (ITS-68 temperatures, 1 atm);
  it agrees with IAPWS-95 within about 0.01 % over 0-100 °C, far inside a meter's class.
- specific heat: c_p = 4.19 kJ/(kg·K), water between 20 and 100 °C varies 4.18-4.22 kJ/(kg·K)
  (IAPWS-95); real calculators use EN 1434-1's enthalpy tables, the simulator a constant, which
  is a modelling choice, not something the harness checks (it checks energy against the meter's
  own power register).

Counters work like the electricity meter's: whole register steps are counted and the fractional
remainder is carried, so a register never shows a value the meter did not reach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

C_P_J_PER_KG_K = 4190.0
KELL = (999.83952, 16.945176, -7.9870401e-3, -46.170461e-6, 105.56302e-9, -280.54253e-12)
KELL_DENOMINATOR = 16.879850e-3


def water_density(t_c: float) -> float:
    """Density of liquid water in kg/m³ at ``t_c`` °C (Kell 1975, valid 0-150 °C)."""
    if not 0.0 <= t_c <= 150.0:
        raise ValueError(f"water density is modelled for 0-150 °C, not {t_c:g} °C")
    numerator = sum(a * t_c**i for i, a in enumerate(KELL))
    return numerator / (1.0 + KELL_DENOMINATOR * t_c)


def thermal_power_w(flow_m3_h: float, t_flow: float, t_return: float) -> float:
    """Thermal power in W of ``flow_m3_h`` measured in the flow pipe at the given temperatures."""
    mass_rate = flow_m3_h / 3600.0 * water_density(t_flow)  # kg/s
    return mass_rate * C_P_J_PER_KG_K * (t_flow - t_return)


@dataclass
class StepCounter:
    """A register that counts whole steps of ``step`` canonical units, carrying the remainder."""

    step: float
    count: int = 0
    pending: float = 0.0

    def add(self, amount: float) -> None:
        self.pending += amount / self.step
        whole = math.floor(self.pending)
        if whole > 0:
            self.pending -= whole
            self.count += whole

    @property
    def value(self) -> float:
        return self.count * self.step


@dataclass
class HeatFlow:
    """The heat carrier through the meter: what drives it (set on the command line or control channel)."""

    flow_m3_h: float
    t_flow: float
    t_return: float

    def __post_init__(self) -> None:
        water_density(self.t_flow)  # raises outside the modelled range
        water_density(self.t_return)
        if self.flow_m3_h < 0:
            raise ValueError("volume flow cannot be negative")

    @property
    def power_w(self) -> float:
        return thermal_power_w(self.flow_m3_h, self.t_flow, max(0.0, min(self.t_return, self.t_flow)))

    @property
    def density(self) -> float:
        return water_density(self.t_flow)


@dataclass
class HeatIntegrator:
    """Integrates a heat flow over physical time into energy (Wh), volume (m³) and mass (t)."""

    flow: HeatFlow
    energy: StepCounter
    volume: StepCounter
    mass: StepCounter
    last_phys: float = 0.0
    energy_gain: float = 1.0  # a defect: the calculator integrates power with this error
    fixed_density: float | None = None  # a defect: mass from a constant density, kg/m³
    record_mass: bool = True  # a defect: mass never advances
    return_offset_k: float = 0.0  # a defect: the return temperature sensor reads this much off
    counters: dict[str, StepCounter] = field(init=False)

    def __post_init__(self) -> None:
        self.counters = {"energy": self.energy, "volume": self.volume, "mass": self.mass}

    def accumulate_to(self, phys: float) -> None:
        """Count up to physical time ``phys``; the flow is constant between calls."""
        dt = phys - self.last_phys
        if dt <= 0:
            return
        volume = self.flow.flow_m3_h * dt / 3600.0
        self.energy.add(self.measured.power_w * self.energy_gain * dt / 3600.0)
        self.volume.add(volume)
        if self.record_mass:
            self.mass.add(volume * (self.fixed_density or self.flow.density) / 1000.0)
        self.last_phys = phys

    @property
    def measured(self) -> HeatFlow:
        """The heat carrier as the meter's sensors see it (the true one, unless a sensor is off)."""
        if not self.return_offset_k:
            return self.flow
        return HeatFlow(self.flow.flow_m3_h, self.flow.t_flow, max(0.0, self.flow.t_return + self.return_offset_k))

    def snapshot(self) -> dict[str, Any]:
        return {name: {"count": c.count, "pending": c.pending} for name, c in self.counters.items()}

    def restore(self, state: dict[str, Any]) -> None:
        for name, s in state.items():
            self.counters[name].count, self.counters[name].pending = int(s["count"]), float(s["pending"])
