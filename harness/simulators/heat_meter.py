"""The golden simulated heat meter (`harness sim heat-meter`): Modbus TCP/RTU, its own profile.

A standalone process like the electricity meter, sharing its body (RTC, NVM, settings, control
channel, power-loss behaviour) through ``SimulatedModbusDevice``. A volume flow and two
temperatures (``--flow``, ``--t-flow``, ``--t-return``) drive it; thermal power, energy, volume
and mass follow from the physics in ``heat.py``. Seeded defects (``--defects``) each break one
requirement of cl. 96.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

from harness.config.profile import Profile
from harness.quantities import (
    FLOW_TEMPERATURE,
    HEAT_ENERGY,
    HEAT_POWER,
    MASS,
    RETURN_TEMPERATURE,
    VOLUME,
    VOLUME_FLOW,
)
from harness.simulators.defects import HEAT_DEFECTS
from harness.simulators.heat import HeatFlow, HeatIntegrator, StepCounter
from harness.simulators.modbus_device import SimulatedModbusDevice, Span, common_parser, run_simulator
from harness.simulators.regimage import encode_point

PROG = "harness sim heat-meter"
LAG_PERIOD_S = 300.0  # heat_nvm_write_lag: counters saved only on this grid of device time
GLITCH_EVERY = 5  # heat_counter_glitch: every n-th read steps back
GLITCH_STEPS = 3
ENERGY_ERROR = 1.03  # heat_energy_inconsistent: energy runs 3 % above the power register
FIXED_DENSITY = 1000.0  # heat_mass_fixed_density: kg/m³ whatever the temperature
RETURN_SENSOR_OFFSET_K = -20.0  # heat_return_sensor_low: the return sensor reads 20 K low
FLOAT_COUNT_FRACTION = 1e-3  # a float register counts in thousandths of its declared unit
COUNTERS = {HEAT_ENERGY: "energy", VOLUME: "volume", MASS: "mass"}


class HeatMeterSimulator(SimulatedModbusDevice):
    """An EN 1434-style heat meter: flow sensor in the flow pipe, two temperature sensors."""

    def __init__(self, profile: Profile, state_dir: Path, flow: HeatFlow, defects: set[str], serial: int) -> None:
        self.heat = HeatIntegrator(
            flow=flow, energy=self._counter(profile, HEAT_ENERGY), volume=self._counter(profile, VOLUME),
            mass=self._counter(profile, MASS),
            energy_gain=ENERGY_ERROR if "heat_energy_inconsistent" in defects else 1.0,
            fixed_density=FIXED_DENSITY if "heat_mass_fixed_density" in defects else None,
            return_offset_k=RETURN_SENSOR_OFFSET_K if "heat_return_sensor_low" in defects else 0.0,
        )
        self.lag_period_s = LAG_PERIOD_S if "heat_nvm_write_lag" in defects else None
        super().__init__(profile, state_dir, defects, serial)

    @staticmethod
    def _counter(profile: Profile, name: str) -> StepCounter:
        """A counter in the register's own steps (integer registers) or a fine fraction of its unit."""
        point = profile.modbus.points.get(name) if profile.modbus else None
        if point is None:
            return StepCounter(step=1.0)
        return StepCounter(step=point.factor * FLOAT_COUNT_FRACTION if point.type.is_float else point.factor)

    # ---- metering ---------------------------------------------------------------------------
    def metering_fresh(self) -> None:
        """A meter fresh from the factory has been in service a while: plausible counter values."""
        rng = random.Random(self.serial)
        volume = rng.uniform(1_000.0, 9_000.0)  # m³
        start = {"energy": volume * rng.uniform(40_000.0, 60_000.0),  # Wh: ~45 kWh per m³ at ΔT 40 K
                 "volume": volume, "mass": volume * self.heat.flow.density / 1000.0}
        for name, counter in self.heat.counters.items():
            counter.count = int(start[name] / counter.step)

    def metering_restore(self, state: dict[str, Any]) -> None:
        self.heat.restore(state)

    def metering_state(self) -> dict[str, Any]:
        return self.heat.snapshot()

    def metering_key(self) -> tuple[Any, ...]:
        return tuple(c.count for c in self.heat.counters.values())

    def metering_accumulate_to(self, phys: float) -> None:
        self.heat.accumulate_to(phys)

    def metering_resync(self, phys: float) -> None:
        self.heat.last_phys = phys

    def refuses(self, spans: list[Span]) -> bool:
        return "heat_mass_not_recorded" in self.defects and any(s.name == MASS for s in spans)

    def extra_control(self, op: str, req: dict[str, Any]) -> bool:
        """``set_flow``: change the heat carrier (any of flow_m3_h, t_flow, t_return)."""
        if op != "set_flow":
            return False
        self.refresh()  # what flowed up to now was metered at the old conditions
        f = self.heat.flow
        self.heat.flow = HeatFlow(float(req.get("flow_m3_h", f.flow_m3_h)), float(req.get("t_flow", f.t_flow)),
                                  float(req.get("t_return", f.t_return)))
        return True

    # ---- registers ----------------------------------------------------------------------------
    def render_point(self, span: Span) -> list[int]:
        flow = self.heat.measured
        if span.name in COUNTERS:
            counter = self.heat.counters[COUNTERS[span.name]]
            count = counter.count
            if "heat_counter_glitch" in self.defects and self.reads % GLITCH_EVERY == 0:
                count -= GLITCH_STEPS
            return encode_point(span.point, count * counter.step)
        instantaneous = {HEAT_POWER: flow.power_w, VOLUME_FLOW: flow.flow_m3_h, FLOW_TEMPERATURE: flow.t_flow,
                         RETURN_TEMPERATURE: flow.t_return}
        return encode_point(span.point, instantaneous.get(span.name, 0))


def build_parser() -> argparse.ArgumentParser:
    p = common_parser(PROG, __doc__.splitlines()[0], "TEK-SIM-HM1", 96000001)
    p.add_argument("--flow", type=float, default=1.2, help="volume flow in m³/h (default 1.2)")
    p.add_argument("--t-flow", type=float, default=90.0, help="flow (supply) temperature in °C (default 90)")
    p.add_argument("--t-return", type=float, default=55.0, help="return temperature in °C (default 55)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        flow = HeatFlow(args.flow, args.t_flow, args.t_return)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    return run_simulator(args, PROG, HEAT_DEFECTS, "tek-sim-hm1.yaml",
                         lambda profile, defects: HeatMeterSimulator(profile, args.state_dir, flow, defects,
                                                                     args.serial))
