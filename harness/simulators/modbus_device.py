"""What every simulated Modbus device shares: register map from its profile, battery-backed RTC,
fsynced NVM, settings, the control channel, and the process around them.

A device model (electricity meter, heat meter, …) subclasses ``SimulatedModbusDevice`` and
supplies only its metering: how quantities accumulate over physical time, how they render into
registers, and what of it is kept in NVM. The clock, settings, NVM policy, power-loss behaviour
and the clock/NVM/settings defects behave the same on every simulated device, as they should.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config.modbus_map import RegisterTable
from harness.config.profile import Profile
from harness.events import EventKind
from harness.quantities import CLOCK, FIRMWARE_VERSION, LINK_STATUS, SERIAL_NUMBER
from harness.simulators.channels import SimChannels
from harness.simulators.control import advance_seconds
from harness.simulators.intervals import IntervalRecord
from harness.simulators.journal import SimJournal
from harness.simulators.layout_image import BOOKKEEPING, store_spans
from harness.simulators.load_profile import SimLoadProfile
from harness.simulators.nvstate import NvStore
from harness.simulators.process import common_parser as common_parser  # re-exported: the process around a
from harness.simulators.process import run_simulator as run_simulator  # device lives in process.py
from harness.simulators.regimage import decode_clock, decode_int, decode_point, encode_clock, encode_point
from harness.simulators.timeline import Timeline
from harness.simulators.write_guard import SimWriteGuard

FIRMWARE = "1.4.2"
DAY = 86400.0
CLOCK_RESET_TO = 946684800.0  # 2000-01-01 00:00:00 device local time, where an RTC without battery restarts
RTC_DRIFT = 0.005  # clock_drift: the crystal runs 0.5 % fast
DROP_SHARE = 0.03  # intermittent_unavailable: the share of requests left unanswered
SILENCE_S, RESTART_S = 1.0, 8.0  # slow_link_recovery: after this long without a request, deaf for this long
FACTORY_SETTINGS = {"ct_ratio": 1, "demand_period_min": 15}  # any other declared setting starts at 0

# Defects every simulated device offers: they concern the RTC, the NVM policy and settings.
COMMON_DEFECTS = ("settings_volatile", "clock_set_ignored", "clock_resets_on_power_loss", "rtc_stops_when_off",
                  "clock_drift")


@dataclass(frozen=True)
class Span:
    """A run of registers that belongs to one thing in the profile."""

    start: int
    count: int
    table: RegisterTable
    name: str
    kind: str  # point | clock | setting | unlock | journal | load_profile
    point: Any  # ModbusPoint or ModbusClock


def _contiguous_runs(spans: list[Span]) -> list[tuple[int, int]]:
    """(start, count) of each run of back-to-back spans. pymodbus builds the served registers entry by entry (~10 µs
    each); a journal or load profile declares ~1,900 spans, so one entry per span cost ~30 ms of every simulator
    start. One entry per run serves the same registers: every register of a REGISTERS entry carries the same flags,
    whatever entry it came from, and the values are the action's (``render``), not the entry's."""
    runs: list[tuple[int, int]] = []
    for span in sorted(spans, key=lambda s: s.start):
        if runs and sum(runs[-1]) == span.start:
            runs[-1] = (runs[-1][0], runs[-1][1] + span.count)
        else:
            runs.append((span.start, span.count))
    return runs


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
            if "rtc_stops_when_off" in defects:  # the RTC lost the time since the last moment it was saved alive
                self.timeline.rtc_offset -= max(0.0, time.time() - state["timeline"]["wall"])
        now = self.timeline.physical()
        self.metering_resync(now)  # nothing was metered while the power was off
        self.journal = SimJournal.power_on(profile.modbus.journal, state_dir, defects, self.utc_offset_s, state,
                                           self.timeline.rtc()) if profile.modbus.journal else None
        totals = self.interval_totals()
        self.load_profile = SimLoadProfile.power_on(profile.modbus.load_profile, state_dir, defects, self.utc_offset_s,
                                                    state is None, self.timeline.rtc() - self.utc_offset_s, totals) \
            if totals or profile.modbus.load_profile else None
        self.channels = SimChannels(profile.interfaces, self.journal, defects, self.timeline.rtc) \
            if profile.interfaces else None
        protection = profile.modbus.write_protection
        self.guard = SimWriteGuard(protection, defects, lambda: self.timeline.physical()) if protection else None
        self._saved_metering = self.metering_state()
        self._lag_grid = math.floor(now / self.lag_period_s) if self.lag_period_s else 0
        self.persist(force=True)
        self.save_intervals()

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

    def interval_totals(self) -> dict[str, int]:
        """Register totals (Wh / varh) of the energy channels a load profile records, metered up to now;
        a device that meters no such channel keeps no load profile unless its profile declares one."""
        return {}

    def on_interval_closed(self, record: IntervalRecord) -> None:
        """Called once a closed interval is on disk, in order (again after a power-up if the call may
        not have finished before it): a concentrator pushes the record upstream here."""
        return None

    def extra_control(self, op: str, req: dict[str, Any]) -> bool:
        """Device-specific control ops (e.g. set_load); True when handled."""
        return False

    def take_point_write(self, span: Span, values: list[int]) -> bool:
        """A write to a measured point: refused (False) — a device model's defect may take it."""
        return False

    def set_unlock_password(self, password: str | None) -> None:
        """The password that opens a write session (``--unlock-password``); ignored without write protection."""
        if self.guard is not None:
            self.guard.set_password(password)

    # ---- metering and NVM -------------------------------------------------------------------
    def refresh(self) -> None:
        """Bring metering up to now and save it as the NVM policy says (golden: whenever it changed).
        Load-profile intervals that ended meanwhile close first, each with the energy up to its end."""
        now = self.timeline.physical()
        if self.load_profile is not None:
            self.load_profile.close_due(now, self.timeline, self.metering_accumulate_to, self.interval_totals,
                                        self.save_intervals)
        if self.lag_period_s:
            grid = math.floor(now / self.lag_period_s)
            if grid > self._lag_grid:
                self.metering_accumulate_to(grid * self.lag_period_s)
                self._saved_metering = self.metering_state()
                self._lag_grid = grid
                self.persist(force=True)
            self.metering_accumulate_to(now)
        else:
            self.metering_accumulate_to(now)
            self._saved_metering = self.metering_state()
            self.persist()

    def save_intervals(self) -> None:
        """Save closed intervals, then hand them to the hook. Off the request path (tick, control) or
        before a read that shows them, and always after the metering NVM: a cut before the save leaves
        energy the next power-up books to the interval in progress, never a record ahead of the registers."""
        if self.load_profile is not None:
            for record in self.load_profile.save():
                self.on_interval_closed(record)

    def persist(self, force: bool = False) -> None:
        rtc = self.timeline.rtc()
        key = (self.metering_key(), tuple(sorted(self.settings.items())), self.timeline.rtc_offset)
        if not force and key == self._persisted_key:
            return
        settings = self.factory_settings if "settings_volatile" in self.defects else self.settings
        self.nvm.save({"version": 2, "serial": self.serial, "metering": self._saved_metering,
                       "settings": settings, "timeline": self.timeline.to_state(), "rtc_at_save": rtc,
                       "wall_at_save": time.time()})
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
        if span.kind == "unlock":
            return [0] * span.count  # reads never show the password
        if span.kind == "journal":
            assert self.journal is not None
            return self.journal.render(span.name)
        if span.kind == "load_profile":
            assert self.load_profile is not None
            return self.load_profile.render(span.name)
        if span.name == LINK_STATUS and self.channels is not None:
            return encode_point(span.point, self.channels.status_word())
        if span.name in (SERIAL_NUMBER, FIRMWARE_VERSION):
            return encode_point(span.point, self.serial if span.name == SERIAL_NUMBER else FIRMWARE)
        return self.render_point(span)

    def interface_for(self, transport: str) -> str | None:
        """The declared interface (main / reserve) a server on this transport (tcp / serial) is, if any."""
        spec = self.profile.interfaces
        return next((name for name, i in spec.named() if i.transport == transport), None) if spec else None

    async def action_on(self, interface: str, fc: int, start_address: int, address: int, count: int,
                        registers: list[int], set_values: list[int] | list[bool] | None) -> Any:
        """A request that arrived on one declared interface: it keeps that interface up."""
        from pymodbus.constants import ExcCodes

        assert self.channels is not None
        if not self.channels.serves(interface):
            return ExcCodes.DEVICE_FAILURE
        self.channels.seen(interface)
        return await self.action(fc, start_address, address, count, registers, set_values)

    async def action(self, fc: int, start_address: int, address: int, count: int, registers: list[int],
                     set_values: list[int] | list[bool] | None) -> Any:
        from pymodbus.constants import ExcCodes

        if "intermittent_unavailable" in self.defects and self._dropped.random() < DROP_SHARE:
            # No answer at all: pymodbus answers when the request's own task ends, so a cancelled one is a
            # request dropped on the floor — the client times out, other requests and connections carry on.
            raise asyncio.CancelledError
        if "slow_link_recovery" in self.defects and self._restarting():
            raise asyncio.CancelledError
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
            if any(span.kind == "load_profile" for span in spans):
                self.save_intervals()
            for span in spans:
                off = span.start - start_address
                registers[off:off + span.count] = self.render(span)
            return None
        return self._write(spans, address, count, [int(v) for v in set_values])

    def serve_bits(self, fc: int, address: int, count: int, values: list[int] | None) -> list[int] | int:
        """FC01 / FC02 reads and FC05 / FC15 writes of the profile's coil and discrete-input points: the bits
        read (or ``[]`` for a write done), else a Modbus exception code. Served from the wire layer, beside
        pymodbus's register work: the same spans, settings and write rules as the registers."""
        table = RegisterTable.DISCRETE_INPUT if fc == 2 else RegisterTable.COIL
        spans = self.spans_for(table, address, count)
        if spans is None or self.refuses(spans):
            return 2  # illegal data address
        if values is None:
            self.reads += 1
            self.refresh()
            return [bit for span in spans for bit in self.render(span)][address - spans[0].start:][:count]
        refused = self._write(spans, address, count, values)
        return [] if refused is None else int(refused)

    def _restarting(self) -> bool:
        """The slow_link_recovery defect: a request after a silence starts a restart of the network module."""
        now = time.monotonic()
        last, self._last_request = getattr(self, "_last_request", now), now
        if now - last > SILENCE_S and now >= getattr(self, "_deaf_until", 0.0):
            self._deaf_until = now + RESTART_S
        return now < getattr(self, "_deaf_until", 0.0)

    @functools.cached_property
    def _dropped(self) -> random.Random:
        """The intermittent_unavailable defect's dice: seeded by the serial number, so a run repeats."""
        return random.Random(f"intermittent_unavailable {self.serial}")

    def _write(self, spans: list[Span], address: int, count: int, values: list[int]) -> Any:
        from pymodbus.constants import ExcCodes

        if len(spans) != 1 or spans[0].start != address or spans[0].count != count:
            return ExcCodes.ILLEGAL_ADDRESS  # only whole points are writable
        span = spans[0]
        if span.kind == "unlock":
            return self._unlock(span, values)
        if span.kind == "clock" and self.profile.clock and (self.profile.clock.writable
                                                            or "readonly_clock_writable" in self.defects):
            if self.guard is not None and not self.guard.permits("clock"):
                return ExcCodes.DEVICE_FAILURE  # no write session: the clock stays as it is
            try:
                local = decode_clock(span.point, values, self.utc_offset_s)
            except ValueError:
                return ExcCodes.ILLEGAL_VALUE
            self.refresh()  # what was metered up to now belongs to the old time of day
            old = self.timeline.rtc()
            if "clock_set_ignored" not in self.defects:
                self.timeline.set_rtc(local)
                self.metering_resync(self.timeline.physical())
                if self.load_profile is not None:
                    self.load_profile.clock_set(local - self.utc_offset_s, self.interval_totals())
            self.persist(force=True)
            if self.journal:  # persisted before the write is answered, like the clock itself
                self.journal.log(EventKind.CLOCK_SET, self.timeline.rtc(), old=self._utc(old), new=self._utc(local))
            if self.guard is not None:
                self.guard.wrote("clock")
            return None
        if span.kind == "setting" and span.point.writable:
            if self.guard is not None and not self.guard.permits("settings"):
                return ExcCodes.DEVICE_FAILURE
            if self.guard is not None:
                self.guard.wrote("settings")
            old_value = self.settings[span.name]
            self.settings[span.name] = int(decode_point(span.point, values))
            self.persist(force=True)
            if self.journal:
                self.journal.log(EventKind.CONFIG_CHANGE, self.timeline.rtc(), subject=span.start, old=old_value,
                                 new=self.settings[span.name])
            return None
        store = {"journal": self.journal, "load_profile": self.load_profile}.get(span.kind)
        if span.name == "selector" and store is not None:
            word = span.point
            index = decode_int(word.type, word.word_order.value, values)
            if not 0 <= index < max(1, store.spec.capacity):
                return ExcCodes.ILLEGAL_VALUE
            store.selector = index
            return None
        if span.kind == "point":
            self.refresh()
            if self.take_point_write(span, values):  # only a defect gets here: the metering really changed
                self._saved_metering = self.metering_state()
                self.persist(force=True)
                return None
        return ExcCodes.ILLEGAL_ADDRESS

    def _unlock(self, span: Span, values: list[int]) -> Any:
        """The unlock register: the right password opens a write session; a wrong one is refused and logged."""
        from pymodbus.constants import ExcCodes

        assert self.guard is not None
        if self.guard.unlock(values):
            return None
        if self.journal:
            self.journal.log(EventKind.AUTH_FAILURE, self.timeline.rtc(), subject=span.start)
        return ExcCodes.ILLEGAL_VALUE

    def sim_device(self, unit_id: int, interface: str | None = None) -> Any:
        """The pymodbus device for one server; ``interface`` names the declared interface it is."""
        from pymodbus.simulator import DataType as SimType
        from pymodbus.simulator import SimData, SimDevice

        def block(table: RegisterTable) -> list[SimData]:
            data = [SimData(start, count=count, values=0, datatype=SimType.REGISTERS)
                    for start, count in _contiguous_runs(self.spans[table])]
            return data or [SimData(0, datatype=SimType.INVALID)]

        bits = [SimData(0, values=False, datatype=SimType.BITS)]  # never served: FC1/2 are refused
        action = self.action if interface is None or self.channels is None \
            else functools.partial(self.action_on, interface)
        return SimDevice(id=unit_id, simdata=(bits, list(bits), block(RegisterTable.HOLDING),
                                              block(RegisterTable.INPUT)), action=action)

    # ---- control channel ----------------------------------------------------------------------
    async def control(self, req: dict[str, Any]) -> dict[str, Any]:
        op = str(req.get("op"))
        if op == "advance":
            seconds = advance_seconds(req)
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
        self.save_intervals()  # a day of advance is one load-profile save, before anything can read it
        return {"ok": True, "physical": self.timeline.physical(), "rtc_local": self.timeline.rtc(),
                "speed": self.timeline.speed, "nvm_writes": self.nvm.writes,
                "journal": self.journal.status() if self.journal else None,
                "load_profile": self.load_profile.status() if self.load_profile else None}

    async def tick(self) -> None:
        """Metering runs between requests too (and so does the NVM policy).

        The device also saves at least once a second while alive, so that a power-down can be
        stamped on the next power-up with the last moment it was known to run. That save happens
        here, off the request path and out of phase with the clock's second ticks, so that it
        never delays the answer that shows a new second (which a drift measurement times). Closed
        load-profile intervals are saved here for the same reason (and before a read that shows them)."""
        while True:
            await asyncio.sleep(0.25)
            self.refresh()
            self.save_intervals()
            if self.channels is not None:
                self.channels.check()  # an interface goes down on silence, whether or not anyone reads
            if time.monotonic() - self._saved_wall >= 1.0:
                self.persist(force=True)


def build_spans(profile: Profile) -> dict[RegisterTable, list[Span]]:
    m = profile.modbus
    assert m is not None
    spans: dict[RegisterTable, list[Span]] = {table: [] for table in RegisterTable}
    for name, p in m.points.items():
        spans[p.table].append(Span(p.address, p.register_count, p.table, name, "point", p))
    for name, p in m.settings.items():
        spans[p.table].append(Span(p.address, p.register_count, p.table, name, "setting", p))
    if m.clock:
        spans[m.clock.table].append(Span(m.clock.address, m.clock.register_count, m.clock.table, CLOCK, "clock",
                                         m.clock))
    if m.write_protection:
        unlock = m.write_protection.unlock
        spans[RegisterTable.HOLDING].append(Span(unlock.address, unlock.register_count, RegisterTable.HOLDING,
                                                 "unlock", "unlock", unlock))
    for kind, store in (("journal", m.journal), ("load_profile", m.load_profile)):
        for address, count, name, writable in store_spans(store) if store else []:
            table = RegisterTable.HOLDING if writable else store.table
            word = getattr(store.layout, name, None) if name in BOOKKEEPING else None
            spans[table].append(Span(address, count, table, name, kind, word))
    for table in spans:
        spans[table].sort(key=lambda s: s.start)
    return spans
