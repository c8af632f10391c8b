"""What every simulated Modbus device shares: register map from its profile, battery-backed RTC,
fsynced NVM, settings, the control channel, and the process around them.

A device model (electricity meter, heat meter, …) subclasses ``SimulatedModbusDevice`` and
supplies only its metering: how quantities accumulate over physical time, how they render into
registers, and what of it is kept in NVM. The clock, settings, NVM policy, power-loss behaviour
and the clock/NVM/settings defects behave the same on every simulated device, as they should.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config.modbus_map import RegisterTable
from harness.config.profile import Profile
from harness.events import EventKind
from harness.quantities import CLOCK, FIRMWARE_VERSION, SERIAL_NUMBER
from harness.simulators.defects import Defect, parse_defects
from harness.simulators.journal import SimJournal
from harness.simulators.nvstate import NvStore
from harness.simulators.regimage import decode_clock, decode_int, decode_point, encode_clock, encode_point
from harness.simulators.timeline import Timeline

FIRMWARE = "1.4.2"
DAY = 86400.0
CLOCK_RESET_TO = 946684800.0  # 2000-01-01 00:00:00 device local time, where an RTC without battery restarts
RTC_DRIFT = 0.005  # clock_drift: the crystal runs 0.5 % fast
FACTORY_SETTINGS = {"ct_ratio": 1, "demand_period_min": 15}  # any other declared setting starts at 0

# Defects every simulated device offers: they concern the RTC, the NVM policy and settings.
COMMON_DEFECTS = ("settings_volatile", "clock_set_ignored", "clock_resets_on_power_loss", "clock_drift")


@dataclass(frozen=True)
class Span:
    """A run of registers that belongs to one thing in the profile."""

    start: int
    count: int
    table: RegisterTable
    name: str
    kind: str  # point | clock | setting | journal
    point: Any  # ModbusPoint or ModbusClock


class SimulatedModbusDevice(ABC):
    """The shared body of a simulated Modbus device; subclasses add the metering."""

    lag_period_s: float | None = None  # a *_nvm_write_lag defect: metering saved only on this grid

    def __init__(self, profile: Profile, state_dir: Path, defects: set[str], serial: int) -> None:
        assert profile.modbus is not None and profile.clock is not None
        self.profile = profile
        self.defects = defects
        self.nvm = NvStore(state_dir)
        self.utc_offset_s = profile.clock.tzinfo.utcoffset(None).total_seconds()  # type: ignore[union-attr]
        self.spans = build_spans(profile)
        self.reads = 0
        self._persisted_key: tuple[Any, ...] | None = None
        self.factory_settings = {name: FACTORY_SETTINGS.get(name, 0) for name in profile.modbus.settings}
        drift = RTC_DRIFT if "clock_drift" in defects else 0.0
        state = self.nvm.load()
        if state is None:
            self.serial = serial
            self.timeline = Timeline.fresh(self.utc_offset_s)
            self.timeline.drift = drift
            self.settings = dict(self.factory_settings)
            self.metering_fresh()
        else:
            self.serial = state["serial"]
            self.timeline = Timeline.from_state(state["timeline"], drift)
            self.settings = dict(self.factory_settings if "settings_volatile" in defects else state["settings"])
            self.metering_restore(state["metering"])
            if "clock_resets_on_power_loss" in defects:
                self.timeline.set_rtc(CLOCK_RESET_TO)
        now = self.timeline.physical()
        self.metering_resync(now)  # nothing was metered while the power was off
        self.journal = SimJournal.power_on(profile.modbus.journal, state_dir, defects, self.utc_offset_s, state,
                                           self.timeline.rtc()) if profile.modbus.journal else None
        self._saved_metering = self.metering_state()
        self._lag_grid = math.floor(now / self.lag_period_s) if self.lag_period_s else 0
        self.persist(force=True)

    def _utc(self, local: float) -> int:
        return int(local - self.utc_offset_s)

    # ---- what a device model supplies -----------------------------------------------------------
    @abstractmethod
    def metering_fresh(self) -> None:
        """Initial metering state of a device fresh from the factory."""

    @abstractmethod
    def metering_restore(self, state: dict[str, Any]) -> None:
        """Metering state from NVM after power-on."""

    @abstractmethod
    def metering_state(self) -> dict[str, Any]:
        """Metering state to keep in NVM (JSON-able)."""

    @abstractmethod
    def metering_key(self) -> tuple[Any, ...]:
        """What the registers show of the metering: NVM is rewritten when it changes."""

    @abstractmethod
    def metering_accumulate_to(self, phys: float) -> None:
        """Meter up to physical time ``phys``."""

    @abstractmethod
    def metering_resync(self, phys: float) -> None:
        """Continue metering from ``phys`` without accumulating the gap (power-on, clock set)."""

    @abstractmethod
    def render_point(self, span: Span) -> list[int]:
        """Registers of a measured quantity."""

    def refuses(self, spans: list[Span]) -> bool:
        """A defect may make some registers unreadable."""
        return False

    def extra_control(self, op: str, req: dict[str, Any]) -> bool:
        """Device-specific control ops (e.g. set_load); True when handled."""
        return False

    # ---- metering and NVM -------------------------------------------------------------------
    def refresh(self) -> None:
        """Bring metering up to now and save it as the NVM policy says (golden: whenever it changed)."""
        now = self.timeline.physical()
        if self.lag_period_s:
            grid = math.floor(now / self.lag_period_s)
            if grid > self._lag_grid:
                self.metering_accumulate_to(grid * self.lag_period_s)
                self._saved_metering = self.metering_state()
                self._lag_grid = grid
                self.persist(force=True)
            self.metering_accumulate_to(now)
            return
        self.metering_accumulate_to(now)
        self._saved_metering = self.metering_state()
        self.persist()

    def persist(self, force: bool = False) -> None:
        rtc = self.timeline.rtc()
        key = (self.metering_key(), tuple(sorted(self.settings.items())), self.timeline.rtc_offset)
        if not force and key == self._persisted_key:
            return
        settings = self.factory_settings if "settings_volatile" in self.defects else self.settings
        self.nvm.save({"version": 2, "serial": self.serial, "metering": self._saved_metering,
                       "settings": settings, "timeline": self.timeline.to_state(), "rtc_at_save": rtc})
        self._persisted_key = key
        self._saved_wall = time.monotonic()

    # ---- registers ----------------------------------------------------------------------------
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
        if span.kind == "clock":
            return encode_clock(span.point, self.timeline.rtc(), self.utc_offset_s)
        if span.kind == "setting":
            return encode_point(span.point, self.settings[span.name])
        if span.kind == "journal":
            assert self.journal is not None
            return self.journal.render(span.name)
        if span.name in (SERIAL_NUMBER, FIRMWARE_VERSION):
            return encode_point(span.point, self.serial if span.name == SERIAL_NUMBER else FIRMWARE)
        return self.render_point(span)

    async def action(self, fc: int, start_address: int, address: int, count: int, registers: list[int],
                     set_values: list[int] | list[bool] | None) -> Any:
        from pymodbus.constants import ExcCodes

        if fc not in (3, 4, 6, 16):
            return ExcCodes.ILLEGAL_FUNCTION
        table = RegisterTable.INPUT if fc == 4 else RegisterTable.HOLDING
        spans = self.spans_for(table, address, count)
        if spans is None or self.refuses(spans) or (
                "journal_unreadable" in self.defects and any(s.kind == "journal" for s in spans)):
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
            self.refresh()  # what was metered up to now belongs to the old time of day
            old = self.timeline.rtc()
            if "clock_set_ignored" not in self.defects:
                self.timeline.set_rtc(local)
                self.metering_resync(self.timeline.physical())
            self.persist(force=True)
            if self.journal:  # persisted before the write is answered, like the clock itself
                self.journal.log(EventKind.CLOCK_SET, self.timeline.rtc(), old=self._utc(old), new=self._utc(local))
            return None
        if span.kind == "setting" and span.point.writable:
            old_value = self.settings[span.name]
            self.settings[span.name] = int(decode_point(span.point, values))
            self.persist(force=True)
            if self.journal:
                self.journal.log(EventKind.CONFIG_CHANGE, self.timeline.rtc(), subject=span.start, old=old_value,
                                 new=self.settings[span.name])
            return None
        if span.kind == "journal" and span.name == "selector" and self.journal:
            word = span.point
            index = decode_int(word.type, word.word_order.value, values)
            if not 0 <= index < max(1, self.journal.spec.capacity):
                return ExcCodes.ILLEGAL_VALUE
            self.journal.selector = index
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
        op = str(req.get("op"))
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
        elif op == "tamper":
            if self.journal is None:
                raise ValueError("this device's profile declares no journal to log tamper events in")
            self.refresh()
            self.journal.set_tamper(str(req["input"]), bool(req["active"]), self.timeline.rtc())
        elif op != "status" and not self.extra_control(op, req):
            raise ValueError(f"unknown op {op!r}; ops: status, advance, set_speed, tamper and the device's own")
        return {"ok": True, "physical": self.timeline.physical(), "rtc_local": self.timeline.rtc(),
                "speed": self.timeline.speed, "nvm_writes": self.nvm.writes,
                "journal": self.journal.status() if self.journal else None}

    async def tick(self) -> None:
        """Metering runs between requests too (and so does the NVM policy).

        The device also saves at least once a second while alive, so that a power-down can be
        stamped on the next power-up with the last moment it was known to run. That save happens
        here, off the request path and out of phase with the clock's second ticks, so that it
        never delays the answer that shows a new second (which a drift measurement times)."""
        while True:
            await asyncio.sleep(0.25)
            self.refresh()
            if time.monotonic() - self._saved_wall >= 1.0:
                self.persist(force=True)


def build_spans(profile: Profile) -> dict[RegisterTable, list[Span]]:
    m = profile.modbus
    assert m is not None
    spans: dict[RegisterTable, list[Span]] = {RegisterTable.HOLDING: [], RegisterTable.INPUT: []}
    for name, p in m.points.items():
        spans[p.table].append(Span(p.address, p.register_count, p.table, name, "point", p))
    for name, p in m.settings.items():
        spans[p.table].append(Span(p.address, p.register_count, p.table, name, "setting", p))
    if m.clock:
        spans[m.clock.table].append(Span(m.clock.address, m.clock.register_count, m.clock.table, CLOCK, "clock",
                                         m.clock))
    if m.journal:
        j = m.journal
        for address, count, name, writable in SimJournal.spans_of(j):
            table = RegisterTable.HOLDING if writable else j.table
            word = getattr(j.layout, name, None) if name in ("head", "count", "selector") else None
            spans[table].append(Span(address, count, table, name, "journal", word))
    for table in spans:
        spans[table].sort(key=lambda s: s.start)
    return spans


# ---- the process ----------------------------------------------------------------------------------
def common_parser(prog: str, description: str, default_profile: str, default_serial: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--profile", type=Path, help=f"the simulator's profile (default: built-in {default_profile})")
    p.add_argument("--state-dir", type=Path, help="non-volatile state lives here")
    p.add_argument("--tcp", metavar="HOST:PORT", help="serve Modbus TCP (loopback only)")
    p.add_argument("--rtu", metavar="TTY", help="serve Modbus RTU on this serial device / pty")
    p.add_argument("--baudrate", type=int, default=9600)
    p.add_argument("--parity", choices="NEO", default="N")
    p.add_argument("--unit-id", type=int, default=1)
    p.add_argument("--control", metavar="PORT", type=int, help="control channel port on 127.0.0.1")
    p.add_argument("--serial", type=int, default=default_serial)
    p.add_argument("--defects", default="", help="comma-separated seeded defects")
    p.add_argument("--list-defects", action="store_true", help="list the seeded defects and exit")
    return p


def run_simulator(args: argparse.Namespace, prog: str, catalogue: dict[str, Defect], default_profile: str,
                  make: Callable[[Profile, set[str]], SimulatedModbusDevice]) -> int:
    """Parse-checked arguments in, a serving device out, until SIGTERM/SIGINT."""
    if args.list_defects:
        for d in catalogue.values():
            print(f"{d.name:28} cl. {d.clause}  {d.expect}  {d.description}")
        return 0
    if not (args.tcp or args.rtu) or args.state_dir is None:
        print(f"{prog}: needs --state-dir and at least one of --tcp / --rtu", file=sys.stderr)
        return 2
    from harness.config import ConfigError, load_profile
    from harness.resources import builtin_profile

    try:
        defects = parse_defects(args.defects, catalogue)
        profile = load_profile(args.profile or builtin_profile(default_profile))
        device = make(profile, defects)
    except (ValueError, ConfigError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(device, args, prog))
    return 0


async def _serve(device: SimulatedModbusDevice, args: argparse.Namespace, prog: str) -> None:
    from pymodbus import FramerType
    from pymodbus.server import ModbusSerialServer, ModbusTcpServer

    from harness.simulators.control import serve_control

    servers: list[Any] = []
    if args.tcp:
        host, port = args.tcp.rsplit(":", 1)
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"{prog}: the simulator serves loopback only")
        servers.append(ModbusTcpServer(device.sim_device(args.unit_id), address=(host, int(port))))
    if args.rtu:
        servers.append(ModbusSerialServer(device.sim_device(args.unit_id), framer=FramerType.RTU, port=args.rtu,
                                          baudrate=args.baudrate, parity=args.parity))
    control = await serve_control("127.0.0.1", args.control, device.control) if args.control else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for server in servers:
        await server.serve_forever(background=True)
    ticker = asyncio.create_task(device.tick())
    print(f"{prog} ready (serial {device.serial}, defects: {', '.join(sorted(device.defects)) or 'none'})",
          flush=True)
    await stop.wait()
    ticker.cancel()
    device.refresh()  # an orderly shutdown saves everything, like a meter's power-fail interrupt
    device.persist(force=True)
    for server in servers:
        await server.shutdown()
    if control:
        control.close()
