"""The golden simulated electricity meter (`harness sim meter`): Modbus TCP/RTU, its own profile.

A standalone process. Energy accumulates from a configurable 4-quadrant load into per-tariff
registers by the time-of-day schedule of its profile; the clock is readable and settable over
Modbus; energy, settings and the RTC live in a fsynced NVM file; everything else dies with the
process. Seeded defects (``--defects``) each break one requirement.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config.modbus_map import RegisterTable
from harness.config.profile import Profile
from harness.quantities import (
    ACTIVE_TARIFF,
    CLOCK,
    FIRMWARE_VERSION,
    SERIAL_NUMBER,
    EnergyChannel,
    EnergyRegister,
)
from harness.simulators.defects import METER_DEFECTS, parse_defects
from harness.simulators.energy import DAY, ChannelCounter, EnergyMeter
from harness.simulators.nvstate import NvStore
from harness.simulators.regimage import decode_clock, decode_point, encode_clock, encode_point
from harness.simulators.timeline import Timeline

FIRMWARE = "1.4.2"
LAG_PERIOD_S = 300.0  # nvm_write_lag: energy saved only on this grid of device time
GLITCH_EVERY = 5  # counter_glitch: every n-th read steps back
CLOCK_RESET_TO = 946684800.0  # 2000-01-01 00:00:00 device local time, where an RTC without battery restarts
DRIFT = 0.005
FACTORY_SETTINGS = {"ct_ratio": 1, "demand_period_min": 15}  # any other declared setting starts at 0

log = logging.getLogger("harness.sim.meter")


@dataclass(frozen=True)
class Span:
    """A run of registers that belongs to one thing in the profile."""

    start: int
    count: int
    table: RegisterTable
    name: str
    kind: str  # energy | identity | tariff | clock | setting
    point: Any  # ModbusPoint or ModbusClock


class MeterSimulator:
    def __init__(self, profile: Profile, state_dir: Path, load: dict[str, float], defects: set[str],
                 serial: int) -> None:
        assert profile.modbus is not None and profile.tariffs is not None and profile.clock is not None
        self.profile = profile
        self.defects = defects
        self.nvm = NvStore(state_dir)
        self.utc_offset_s = profile.clock.tzinfo.utcoffset(None).total_seconds()  # type: ignore[union-attr]
        self.spans = self._build_spans(profile)
        self.reads = 0
        self._persisted_key: tuple[Any, ...] | None = None
        self._lag_grid = -math.inf
        self._energy_saved: dict[str, Any] | None = None
        self.factory_settings = {name: FACTORY_SETTINGS.get(name, 0) for name in profile.modbus.settings}

        counters = {}
        for ch in EnergyChannel:
            point = profile.modbus.points.get(EnergyRegister(ch).name)
            step = point.factor if point and not point.type.is_float else 1.0
            counters[ch.value] = ChannelCounter(step=step, tariffs=[0] * profile.tariffs.count)
        tariffs = profile.tariffs
        counted = {c.value for c in EnergyChannel}
        if "reactive_not_counted" in defects:
            counted -= {EnergyChannel.REACTIVE_IMPORT.value, EnergyChannel.REACTIVE_EXPORT.value}
        state = self.nvm.load()
        drift = DRIFT if "clock_drift" in defects else 0.0
        if state is None:
            self.serial = serial
            self.timeline = Timeline.fresh(self.utc_offset_s)
            self.timeline.drift = drift
            self.settings = dict(self.factory_settings)
            self._preset(counters)
        else:
            self.serial = state["serial"]
            self.timeline = Timeline.from_state(state["timeline"], drift)
            self.settings = dict(state["settings"])
            for name, s in state["energy"].items():
                c = counters[name]
                c.total, c.tariffs, c.pending = s["total"], list(s["tariffs"]), s["pending"]
            if "settings_volatile" in defects:
                self.settings = dict(self.factory_settings)
            if "clock_resets_on_power_loss" in defects:
                self.timeline.set_rtc(CLOCK_RESET_TO)
        self.meter = EnergyMeter(
            counters=counters, load=load,
            tariff_at=lambda sod: tariffs.tariff_at(_time_of_day(sod)),
            boundaries=sorted(p.time_of_day.hour * 3600 + p.time_of_day.minute * 60 for p in tariffs.schedule),
            last_phys=self.timeline.physical(), counted=counted,
            stuck_tariff=1 if "tariff_stuck" in defects else None,
            remap={2: 3, 3: 2} if "tariff_swapped" in defects and tariffs.count >= 3 else {},
        )
        self._energy_saved = self.meter.snapshot()
        self._lag_grid = math.floor(self.timeline.physical() / LAG_PERIOD_S)
        self.persist(force=True)

    # ---- state ------------------------------------------------------------------------------
    def _preset(self, counters: dict[str, ChannelCounter]) -> None:
        """A meter fresh from the factory has been in service a while: plausible register values."""
        rng = random.Random(self.serial)
        for counter in counters.values():
            counter.tariffs = [rng.randint(10_000, 900_000) for _ in counter.tariffs]
            counter.total = sum(counter.tariffs)

    def refresh(self) -> None:
        """Bring energy up to now and save it as the NVM policy says (golden: whenever it changed)."""
        now = self.timeline.physical()
        if "nvm_write_lag" in self.defects:
            grid = math.floor(now / LAG_PERIOD_S)
            if grid > self._lag_grid:
                self.meter.accumulate_to(grid * LAG_PERIOD_S, self.timeline)
                self._energy_saved = self.meter.snapshot()
                self._lag_grid = grid
                self.persist(force=True)
            self.meter.accumulate_to(now, self.timeline)
            return
        self.meter.accumulate_to(now, self.timeline)
        self._energy_saved = self.meter.snapshot()
        self.persist()

    def persist(self, force: bool = False) -> None:
        key = (tuple((c.total, *c.tariffs) for c in self.meter.counters.values()),
               tuple(sorted(self.settings.items())), self.timeline.rtc_offset)
        if not force and key == self._persisted_key:
            return
        settings = self.factory_settings if "settings_volatile" in self.defects else self.settings
        self.nvm.save({"version": 1, "serial": self.serial, "energy": self._energy_saved,
                       "settings": settings, "timeline": self.timeline.to_state()})
        self._persisted_key = key

    # ---- register map -----------------------------------------------------------------------
    @staticmethod
    def _build_spans(profile: Profile) -> dict[RegisterTable, list[Span]]:
        m = profile.modbus
        assert m is not None
        spans: dict[RegisterTable, list[Span]] = {RegisterTable.HOLDING: [], RegisterTable.INPUT: []}
        for name, p in m.points.items():
            kind = ("energy" if EnergyRegister.parse(name) else "tariff" if name == ACTIVE_TARIFF
                    else "identity")
            spans[p.table].append(Span(p.address, p.register_count, p.table, name, kind, p))
        for name, p in m.settings.items():
            spans[p.table].append(Span(p.address, p.register_count, p.table, name, "setting", p))
        if m.clock:
            spans[m.clock.table].append(Span(m.clock.address, m.clock.register_count, m.clock.table, CLOCK,
                                             "clock", m.clock))
        for table in spans:
            spans[table].sort(key=lambda s: s.start)
        return spans

    def spans_for(self, table: RegisterTable, address: int, count: int) -> list[Span] | None:
        """The spans covering [address, address+count), or None if any register there is unmapped."""
        found, cursor, end = [], address, address + count
        for span in self.spans[table]:
            if span.start + span.count <= cursor:
                continue
            if span.start > cursor:
                return None
            found.append(span)
            cursor = span.start + span.count
            if cursor >= end:
                return found
        return None

    def render(self, span: Span) -> list[int]:
        if span.kind == "energy":
            return encode_point(span.point, self._energy_value(span.name))
        if span.kind == "clock":
            return encode_clock(span.point, self.timeline.rtc(), self.utc_offset_s)
        if span.kind == "setting":
            return encode_point(span.point, self.settings[span.name])
        if span.kind == "tariff":
            return encode_point(span.point, self.meter.stuck_tariff or self._tariff_now())
        value = {SERIAL_NUMBER: self.serial, FIRMWARE_VERSION: FIRMWARE}.get(span.name, 0)
        return encode_point(span.point, value)

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

    # ---- Modbus ------------------------------------------------------------------------------
    async def action(self, fc: int, start_address: int, address: int, count: int, registers: list[int],
                     set_values: list[int] | list[bool] | None) -> Any:
        from pymodbus.constants import ExcCodes

        if fc not in (3, 4, 6, 16):
            return ExcCodes.ILLEGAL_FUNCTION
        table = RegisterTable.INPUT if fc == 4 else RegisterTable.HOLDING
        spans = self.spans_for(table, address, count)
        if spans is None:
            return ExcCodes.ILLEGAL_ADDRESS
        if "register_missing" in self.defects and any(s.name == "reactive_export_total" for s in spans):
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is None:
            self.reads += 1
            self.refresh()
            for span in spans:
                off = span.start - start_address
                registers[off:off + span.count] = self.render(span)
            return None
        return self._write(spans, address, count, [int(v) for v in set_values])

    def _write(self, spans: list[Span], address: int, count: int, values: list[int]) -> Any:
        from pymodbus.constants import ExcCodes

        if len(spans) != 1 or spans[0].start != address or spans[0].count != count:
            return ExcCodes.ILLEGAL_ADDRESS  # only whole points are writable
        span = spans[0]
        if span.kind == "clock" and self.profile.clock and self.profile.clock.writable:
            try:
                local = decode_clock(span.point, values, self.utc_offset_s)
            except ValueError:
                return ExcCodes.ILLEGAL_VALUE
            self.refresh()  # energy up to now belongs to the old time of day
            if "clock_set_ignored" not in self.defects:
                self.timeline.set_rtc(local)
                self.meter.last_phys = self.timeline.physical()
            self.persist(force=True)
            return None
        if span.kind == "setting" and span.point.writable:
            self.settings[span.name] = int(decode_point(span.point, values))
            self.persist(force=True)
            return None
        return ExcCodes.ILLEGAL_ADDRESS

    def sim_device(self, unit_id: int) -> Any:
        from pymodbus.simulator import DataType as SimType
        from pymodbus.simulator import SimData, SimDevice

        def block(table: RegisterTable) -> list[SimData]:
            data = [SimData(s.start, count=s.count, values=0, datatype=SimType.REGISTERS)
                    for s in self.spans[table]]
            return data or [SimData(0, datatype=SimType.INVALID)]

        bits = [SimData(0, values=False, datatype=SimType.BITS)]  # never served: FC1/2 are refused
        return SimDevice(id=unit_id, simdata=(bits, list(bits), block(RegisterTable.HOLDING),
                                              block(RegisterTable.INPUT)), action=self.action)

    # ---- control channel ----------------------------------------------------------------------
    async def control(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "advance":
            seconds = float(req["seconds"])
            if not 0 <= seconds <= 400 * DAY:
                raise ValueError("advance takes 0..400 days")
            self.refresh()
            self.timeline.advance(seconds)
            self.refresh()
        elif op == "set_speed":
            speed = float(req["speed"])
            if not 0 < speed <= 1e6:
                raise ValueError("speed must be in (0, 1e6]")
            self.refresh()
            self.timeline.set_speed(speed)
        elif op == "set_load":
            self.refresh()
            self.meter.load.update({k: float(v) for k, v in req["load"].items() if k in self.meter.load})
        elif op != "status":
            raise ValueError(f"unknown op {op!r}; ops: status, advance, set_speed, set_load")
        return {"ok": True, "physical": self.timeline.physical(), "rtc_local": self.timeline.rtc(),
                "speed": self.timeline.speed, "nvm_writes": self.nvm.writes}

    async def tick(self) -> None:
        """Metering runs between requests too (and so does the NVM policy)."""
        while True:
            await asyncio.sleep(0.25)
            self.refresh()


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
    p = argparse.ArgumentParser(prog="harness sim meter", description=__doc__.splitlines()[0])
    p.add_argument("--profile", type=Path, help="the simulator's profile (default: built-in TEK-SIM-EM4)")
    p.add_argument("--state-dir", type=Path, help="non-volatile state lives here")
    p.add_argument("--tcp", metavar="HOST:PORT", help="serve Modbus TCP (loopback only)")
    p.add_argument("--rtu", metavar="TTY", help="serve Modbus RTU on this serial device / pty")
    p.add_argument("--baudrate", type=int, default=9600)
    p.add_argument("--parity", choices="NEO", default="N")
    p.add_argument("--unit-id", type=int, default=1)
    p.add_argument("--control", metavar="PORT", type=int, help="control channel port on 127.0.0.1")
    p.add_argument("--load", type=parse_load, default=parse_load("3000,500,1200,300"),
                   help="A+ W, A- W, R+ var, R- var (default 3000,500,1200,300)")
    p.add_argument("--serial", type=int, default=95000001)
    p.add_argument("--defects", default="", help="comma-separated seeded defects")
    p.add_argument("--list-defects", action="store_true", help="list the seeded defects and exit")
    return p


async def _serve(sim: MeterSimulator, args: argparse.Namespace) -> None:
    from pymodbus import FramerType
    from pymodbus.server import ModbusSerialServer, ModbusTcpServer

    servers: list[Any] = []
    if args.tcp:
        host, port = args.tcp.rsplit(":", 1)
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("the simulator serves loopback only")
        servers.append(ModbusTcpServer(sim.sim_device(args.unit_id), address=(host, int(port))))
    if args.rtu:
        servers.append(ModbusSerialServer(sim.sim_device(args.unit_id), framer=FramerType.RTU, port=args.rtu,
                                          baudrate=args.baudrate, parity=args.parity))
    control = await serve_control_if(sim, args.control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for server in servers:
        await server.serve_forever(background=True)
    ticker = asyncio.create_task(sim.tick())
    print(f"meter simulator ready (serial {sim.serial}, defects: {', '.join(sorted(sim.defects)) or 'none'})",
          flush=True)
    await stop.wait()
    ticker.cancel()
    sim.refresh()  # an orderly shutdown saves everything, like a meter's power-fail interrupt
    sim.persist(force=True)
    for server in servers:
        await server.shutdown()
    if control:
        control.close()


async def serve_control_if(sim: MeterSimulator, port: int | None) -> Any:
    if port is None:
        return None
    from harness.simulators.control import serve_control

    return await serve_control("127.0.0.1", port, sim.control)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_defects:
        for d in METER_DEFECTS.values():
            print(f"{d.name:28} cl. {d.clause}  {d.expect}  {d.description}")
        return 0
    if not (args.tcp or args.rtu) or args.state_dir is None:
        print("harness sim meter: needs --state-dir and at least one of --tcp / --rtu", file=sys.stderr)
        return 2
    from harness.config import ConfigError, load_profile
    from harness.resources import builtin_profile

    try:
        defects = parse_defects(args.defects, METER_DEFECTS)
        profile = load_profile(args.profile or builtin_profile("tek-sim-em4.yaml"))
    except (ValueError, ConfigError) as exc:
        print(f"harness sim meter: {exc}", file=sys.stderr)
        return 2
    if profile.modbus is None or profile.tariffs is None or profile.clock is None:
        print("harness sim meter: the profile must declare modbus, tariffs and clock", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    sim = MeterSimulator(profile, args.state_dir, args.load, defects, args.serial)
    asyncio.run(_serve(sim, args))
    return 0
