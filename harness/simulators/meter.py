"""The golden simulated electricity meter (`harness sim meter`): Modbus TCP/RTU, its own profile.

A standalone process. Energy accumulates from a configurable 4-quadrant load into per-tariff
registers by the time-of-day schedule of its profile; the clock is readable and settable over
Modbus; energy, settings and the RTC live in a fsynced NVM file; everything else dies with the
process. Seeded defects (``--defects``) each break one requirement.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from harness.config.profile import Profile
from harness.quantities import ACTIVE_TARIFF, EnergyChannel, EnergyRegister
from harness.simulators.defects import METER_DEFECTS
from harness.simulators.energy import DAY, ChannelCounter, EnergyMeter
from harness.simulators.modbus_device import SimulatedModbusDevice, Span, common_parser, run_simulator
from harness.simulators.regimage import decode_point, encode_point

PROG = "harness sim meter"
LAG_PERIOD_S = 300.0  # nvm_write_lag: energy saved only on this grid of device time
GLITCH_EVERY = 5  # counter_glitch: every n-th read steps back


class MeterSimulator(SimulatedModbusDevice):
    """A 4-quadrant multi-tariff electricity meter."""

    def __init__(self, profile: Profile, state_dir: Path, load: dict[str, float], defects: set[str],
                 serial: int) -> None:
        if profile.tariffs is None:
            raise ValueError("the meter simulator's profile must declare tariffs")
        tariffs = profile.tariffs
        counters = {}
        for ch in EnergyChannel:
            point = profile.modbus.points.get(EnergyRegister(ch).name) if profile.modbus else None
            # counts in the declared counting step, else the register's own (1 Wh behind a float register)
            step = (point.resolution * point.factor if point.resolution else
                    point.factor if not point.type.is_float else 1.0) if point else 1.0
            counters[ch.value] = ChannelCounter(step=step, tariffs=[0] * tariffs.count)
        counted = {c.value for c in EnergyChannel}
        if "reactive_not_counted" in defects:
            counted -= {EnergyChannel.REACTIVE_IMPORT.value, EnergyChannel.REACTIVE_EXPORT.value}
        self.meter = EnergyMeter(
            counters=counters, load=load,
            tariff_at=lambda sod: tariffs.tariff_at(_time_of_day(sod)),
            boundaries=sorted(p.time_of_day.hour * 3600 + p.time_of_day.minute * 60 for p in tariffs.schedule),
            last_phys=0.0, counted=counted,
            stuck_tariff=1 if "tariff_stuck" in defects else None,
            remap={2: 3, 3: 2} if "tariff_swapped" in defects and tariffs.count >= 3 else {},
        )
        self.lag_period_s = LAG_PERIOD_S if "nvm_write_lag" in defects else None
        super().__init__(profile, state_dir, defects, serial)

    # ---- metering ---------------------------------------------------------------------------
    def metering_fresh(self) -> None:
        """A meter fresh from the factory has been in service a while: plausible register values."""
        rng = random.Random(self.serial)
        for counter in self.meter.counters.values():
            counter.tariffs = [rng.randint(10_000, 900_000) for _ in counter.tariffs]
            counter.total = sum(counter.tariffs)

    def metering_restore(self, state: dict[str, Any]) -> None:
        self.meter.restore(state)

    def metering_state(self) -> dict[str, Any]:
        return self.meter.snapshot()

    def metering_key(self) -> tuple[Any, ...]:
        return tuple((c.total, *c.tariffs) for c in self.meter.counters.values())

    def metering_accumulate_to(self, phys: float) -> None:
        self.meter.accumulate_to(phys, self.timeline)

    def metering_resync(self, phys: float) -> None:
        self.meter.last_phys = phys

    def interval_totals(self) -> dict[str, int]:
        """The load profile's totals are the registers' own counts (in Wh / varh), so its increments
        add up to exactly what the registers advanced."""
        return {name: round(c.total * c.step) for name, c in self.meter.counters.items()}

    def refuses(self, spans: list[Span]) -> bool:
        return "register_missing" in self.defects and any(s.name == "reactive_export_total" for s in spans)

    def take_point_write(self, span: Span, values: list[int]) -> bool:
        """meter_energy_writable: a whole energy register written over the bus becomes that register's count."""
        reg = EnergyRegister.parse(span.name)
        if "meter_energy_writable" not in self.defects or reg is None:
            return False
        counter = self.meter.counters[reg.channel.value]
        steps = max(0, round(decode_point(span.point, values) / counter.step))
        if reg.tariff is None:
            counter.total = steps
        else:
            counter.tariffs[reg.tariff - 1] = steps
        return True

    def extra_control(self, op: str, req: dict[str, Any]) -> bool:
        if op != "set_load":
            return False
        self.refresh()
        self.meter.load.update({k: float(v) for k, v in req["load"].items() if k in self.meter.load})
        return True

    # ---- registers ----------------------------------------------------------------------------
    def render_point(self, span: Span) -> list[int]:
        if span.name == ACTIVE_TARIFF:
            return encode_point(span.point, self.meter.stuck_tariff or self._tariff_now())
        if EnergyRegister.parse(span.name) is None:
            return encode_point(span.point, 0)
        return encode_point(span.point, self._energy_value(span.name))

    def _tariff_now(self) -> int:
        return self.meter.tariff_at(self.timeline.rtc() % DAY)

    def _energy_value(self, name: str) -> float:
        reg = EnergyRegister.parse(name)
        assert reg is not None
        counter = self.meter.counters[reg.channel.value]
        steps = counter.total if reg.tariff is None else counter.tariffs[reg.tariff - 1]
        if reg.tariff is None and "tariff_total_mismatch" in self.defects:
            steps = round(steps * 1.005)
        if reg.tariff is None and "counter_glitch" in self.defects and self.reads % GLITCH_EVERY == 0:
            steps -= 3
        value = steps * counter.step
        if "wrong_unit" in self.defects and reg.channel.value.startswith("active"):
            value /= 1000.0
        return value


def _time_of_day(sod: float) -> Any:
    from datetime import time

    s = int(sod) % 86400
    return time(s // 3600, (s % 3600) // 60, s % 60)


def parse_load(text: str) -> dict[str, float]:
    parts = [float(x) for x in text.split(",")]
    if len(parts) != 4 or any(p < 0 for p in parts):
        raise argparse.ArgumentTypeError("--load takes four non-negative numbers: A+ W, A- W, R+ var, R- var")
    return dict(zip([c.value for c in EnergyChannel], parts, strict=True))


def build_parser() -> argparse.ArgumentParser:
    p = common_parser(PROG, __doc__.splitlines()[0], "TEK-SIM-EM4", 95000001)
    p.add_argument("--load", type=parse_load, default=parse_load("3000,500,1200,300"),
                   help="A+ W, A- W, R+ var, R- var (default 3000,500,1200,300)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_simulator(args, PROG, METER_DEFECTS, "tek-sim-em4.yaml",
                         lambda profile, defects: MeterSimulator(profile, args.state_dir, args.load, defects,
                                                                 args.serial))
