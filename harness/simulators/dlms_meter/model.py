"""The simulated DLMS meter's metering body: the golden meter's energy model, RTC and NVM, and its COSEM
objects (Register, Data, Clock) as the profile's ``dlms:`` section lays them out.

Energy, tariffs and the clock behave exactly as in the Modbus meter (``simulators/energy.py``,
``timeline.py``, ``nvstate.py``), so the suites judge the same device through another protocol. Values are
encoded by this package's own A-XDR (``axdr``), never by the driver's library.
"""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness.config.dlms_map import (
    CLASS_CLOCK,
    CLASS_DATA,
    CLASS_REGISTER,
    DLMS_UNITS,
    CosemObject,
    DlmsMap,
    obis_bytes,
)
from harness.config.profile import Profile
from harness.events import EventKind
from harness.quantities import ACTIVE_TARIFF, FIRMWARE_VERSION, SERIAL_NUMBER, EnergyChannel, EnergyRegister
from harness.simulators.dlms_meter import apdu
from harness.simulators.dlms_meter.axdr import (
    INTEGERS,
    OCTET_STRING,
    TYPE_NAMES,
    AxdrError,
    date_time,
    decode_whole,
    integer,
    octet_string,
    parse_date_time,
    structure,
    visible_string,
)
from harness.simulators.dlms_meter.profile_generic import ProfileObjects
from harness.simulators.dlms_meter.security import InvocationGuard
from harness.simulators.energy import DAY, ChannelCounter, EnergyMeter
from harness.simulators.journal import SimJournal
from harness.simulators.load_profile import SimLoadProfile
from harness.simulators.modbus_device import CLOCK_RESET_TO, FACTORY_SETTINGS, FIRMWARE, RTC_DRIFT
from harness.simulators.nvstate import NvStore
from harness.simulators.timeline import Timeline

LAG_PERIOD_S = 300.0  # nvm_write_lag: energy saved only on this grid of device time
GLITCH_EVERY = 5  # counter_glitch: every n-th read steps back


class DlmsMeterModel:
    """The meter behind the DLMS server: what a GET reads and a SET changes, object by object."""

    def __init__(self, profile: Profile, state_dir: Path, load: dict[str, float], defects: set[str],
                 serial: int) -> None:
        if profile.dlms is None or profile.tariffs is None or profile.clock is None:
            raise ValueError("the DLMS meter's profile declares `dlms:`, `tariffs:` and `clock:`")
        self.profile = profile
        self.map: DlmsMap = profile.dlms
        self.defects = defects
        self.utc_offset_s = profile.clock.tzinfo.utcoffset(None).total_seconds()  # type: ignore[union-attr]
        tariffs = profile.tariffs
        counters = {}
        for ch in EnergyChannel:
            obj = self.map.points.get(EnergyRegister(ch).name)
            counters[ch.value] = ChannelCounter(step=10.0 ** obj.scaler if obj and obj.scaler is not None else 1.0,
                                                tariffs=[0] * tariffs.count)
        counted = {c.value for c in EnergyChannel}
        if "reactive_not_counted" in defects:
            counted -= {EnergyChannel.REACTIVE_IMPORT.value, EnergyChannel.REACTIVE_EXPORT.value}
        boundaries = sorted(p.time_of_day.hour * 3600 + p.time_of_day.minute * 60 for p in tariffs.schedule)
        self.meter = EnergyMeter(
            counters=counters, load=load, tariff_at=lambda sod: tariffs.tariff_at(_time_of_day(sod)),
            boundaries=boundaries, last_phys=0.0, counted=counted,
            stuck_tariff=1 if "tariff_stuck" in defects else None,
            remap={2: 3, 3: 2} if "tariff_swapped" in defects and tariffs.count >= 3 else {})
        self.factory_settings = {name: FACTORY_SETTINGS.get(name, 0) for name in self.map.settings}
        self.nvm = NvStore(state_dir)
        self.reads = 0
        drift = RTC_DRIFT if "clock_drift" in defects else 0.0
        state = self.nvm.load()
        # client SAP -> the last invocation counter accepted from it: in NVM, so that a replay stays refused
        # after a power cut (Green Book 9.2.7.4), and served as each ciphered association's counter object
        self.invocation_counters: dict[int, int] = {int(sap): n for sap, n in
                                                    (state or {}).get("invocation_counters", {}).items()}
        self._guard = InvocationGuard(self.invocation_counters)
        if state is None:
            self.serial = serial
            self.timeline = Timeline.fresh(self.utc_offset_s)
            self.timeline.drift = drift
            self.settings = dict(self.factory_settings)
            rng = random.Random(serial)  # in service a while: plausible register values
            for counter in self.meter.counters.values():
                counter.tariffs = [rng.randint(10_000, 900_000) for _ in counter.tariffs]
                counter.total = sum(counter.tariffs)
        else:
            self.serial = state["serial"]
            self.timeline = Timeline.from_state(state["timeline"], drift)
            self.settings = dict(self.factory_settings if "settings_volatile" in defects else state["settings"])
            self.meter.restore(state["metering"])
            if "clock_resets_on_power_loss" in defects:
                self.timeline.set_rtc(CLOCK_RESET_TO)
            if "rtc_stops_when_off" in defects:
                self.timeline.rtc_offset -= max(0.0, time.time() - state["timeline"]["wall"])
        self.meter.last_phys = self.timeline.physical()  # nothing was metered while the power was off
        self.journal = SimJournal.power_on(self.map.journal, state_dir, defects, self.utc_offset_s, state,
                                           self.timeline.rtc()) if self.map.journal else None  # type: ignore[arg-type]
        self.load_profile = SimLoadProfile.power_on(
            self.map.load_profile, state_dir, defects, self.utc_offset_s, state is None,  # type: ignore[arg-type]
            self.timeline.rtc() - self.utc_offset_s, self.interval_totals()) if self.map.load_profile else None
        self.profiles = ProfileObjects(self.map, self.journal, self.load_profile, self.utc_offset_s, self._deviation,
                                       defects)
        self.lag_period_s = LAG_PERIOD_S if "nvm_write_lag" in defects else None
        self._lag_grid = math.floor(self.meter.last_phys / self.lag_period_s) if self.lag_period_s else 0
        self._saved_metering = self.meter.snapshot()
        self._persisted: tuple[Any, ...] | None = None
        self._saved_wall = 0.0
        self.persist(force=True)
        self.save_intervals()
        self._objects = {obj.logical_name: (name, obj) for name, obj in {**self.map.points,
                                                                          **self.map.settings}.items()}
        self._clock_ln = self.map.clock.logical_name if self.map.clock else None
        self._counter_objects = {obis_bytes(a.invocation_counter): a.client_sap for a in self.map.associations.values()
                                 if a.invocation_counter is not None}

    # ---- metering and NVM ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Meter up to now; save as the NVM policy says (golden: whenever the registers changed). Load-profile
        intervals that ended meanwhile close first, each with the energy up to its end."""
        now = self.timeline.physical()
        if self.load_profile is not None:
            self.load_profile.close_due(now, self.timeline, lambda t: self.meter.accumulate_to(t, self.timeline),
                                        self.interval_totals, self.save_intervals)
        if self.lag_period_s:
            grid = math.floor(now / self.lag_period_s)
            if grid > self._lag_grid:
                self.meter.accumulate_to(grid * self.lag_period_s, self.timeline)
                self._saved_metering = self.meter.snapshot()
                self._lag_grid = grid
                self.persist(force=True)
            self.meter.accumulate_to(now, self.timeline)
            return
        self.meter.accumulate_to(now, self.timeline)
        self._saved_metering = self.meter.snapshot()
        self.persist()

    def persist(self, force: bool = False) -> None:
        key = (tuple((c.total, *c.tariffs) for c in self.meter.counters.values()),
               tuple(sorted(self.settings.items())), self.timeline.rtc_offset,
               tuple(sorted(self.invocation_counters.items())))
        if not force and key == self._persisted:
            return
        settings = self.factory_settings if "settings_volatile" in self.defects else self.settings
        self.nvm.save({"version": 1, "serial": self.serial, "metering": self._saved_metering, "settings": settings,
                       "timeline": self.timeline.to_state(), "rtc_at_save": self.timeline.rtc(),
                       "wall_at_save": time.time(),
                       "invocation_counters": {str(sap): n for sap, n in self.invocation_counters.items()}})
        self._persisted = key
        self._saved_wall = time.monotonic()

    def interval_totals(self) -> dict[str, int]:
        """The registers' totals in Wh / varh: the load profile's increments are their differences."""
        return {name: round(c.total * c.step) for name, c in self.meter.counters.items()}

    def save_intervals(self) -> None:
        """Closed intervals to their NVM file: off the request path, or before a read that shows them."""
        if self.load_profile is not None:
            self.load_profile.save()

    def log(self, kind: EventKind) -> None:
        """An event in the journal, persisted before the request that caused it is answered."""
        if self.journal is not None:
            self.journal.log(kind, self.timeline.rtc())

    def keep_alive(self) -> None:
        """Off the request path: meter, and save at least once a second (the last moment known alive)."""
        self.refresh()
        self.save_intervals()
        if time.monotonic() - self._saved_wall >= 1.0:
            self.persist(force=True)

    # ---- GET ---------------------------------------------------------------------------------------
    def begin_get(self) -> None:
        """One GET request (normal or with list): metered up to now once, so a list shows one instant."""
        self.reads += 1
        self.refresh()

    def get(self, attr: apdu.Attribute) -> apdu.Result:
        """The attribute's encoded value (as of the last ``begin_get``), or a Data-Access-Result."""
        if self.profiles.holds(attr.obis):
            self.save_intervals()
            return self.profiles.get(attr)
        if self._clock_ln is not None and attr.obis == self._clock_ln:
            if attr.class_id != CLASS_CLOCK:
                return apdu.OBJECT_CLASS_INCONSISTENT
            return self._clock_attribute(attr.attribute)
        if attr.obis in self._counter_objects:
            return self._counter_attribute(attr)
        found = self._objects.get(attr.obis)
        if found is None or (found[0] == "reactive_export_total" and "register_missing" in self.defects):
            if "dlms_unknown_object_answered" in self.defects:
                return integer(TYPE_NAMES["double_long_unsigned"], 0)
            return apdu.OBJECT_UNDEFINED
        name, obj = found
        if attr.class_id != obj.class_id:
            return apdu.OBJECT_CLASS_INCONSISTENT
        if attr.attribute == 1:
            return octet_string(attr.obis)
        if attr.attribute == obj.attribute:
            return self._encode(obj, self._value(name))
        if attr.attribute == 3 and obj.class_id == CLASS_REGISTER:
            return structure(integer(TYPE_NAMES["integer"], obj.scaler or 0),
                             integer(TYPE_NAMES["enum"], DLMS_UNITS[obj.unit or "1"]))
        return apdu.OBJECT_UNAVAILABLE

    def _counter_attribute(self, attr: apdu.Attribute) -> apdu.Result:
        """A ciphered association's invocation counter object (class 1 Data, double-long-unsigned): the last
        counter accepted from its client (0 before any), readable by every association, the public one too."""
        if attr.class_id != CLASS_DATA:
            return apdu.OBJECT_CLASS_INCONSISTENT
        if attr.attribute == 1:
            return octet_string(attr.obis)
        if attr.attribute == 2:
            return integer(TYPE_NAMES["double_long_unsigned"], self.invocation_counters.get(
                self._counter_objects[attr.obis], 0))
        return apdu.OBJECT_UNAVAILABLE

    def accept_invocation_counter(self, client_sap: int, counter: int) -> bool:
        """Whether ``counter`` is above the last one accepted from ``client_sap``; if so it becomes the last, in
        NVM before the request is answered (a power cut then cannot reopen it to a replay)."""
        if not self._guard.accept(client_sap, counter):
            return False
        self.persist()
        return True

    def _value(self, name: str) -> int | str:
        if name == SERIAL_NUMBER:
            return str(self.serial)
        if name == FIRMWARE_VERSION:
            return FIRMWARE
        if name in self.settings:
            return self.settings[name]
        if name == ACTIVE_TARIFF:
            return self.meter.stuck_tariff or self.meter.tariff_at(self.timeline.rtc() % DAY)
        reg = EnergyRegister.parse(name)
        if reg is None:
            return 0
        counter = self.meter.counters[reg.channel.value]
        steps = counter.total if reg.tariff is None else counter.tariffs[reg.tariff - 1]
        if reg.tariff is None and "tariff_total_mismatch" in self.defects:
            steps = round(steps * 1.005)
        if reg.tariff is None and "counter_glitch" in self.defects and self.reads % GLITCH_EVERY == 0:
            steps -= 3
        if "dlms_scaler_mismatch" in self.defects and reg.channel.value.startswith("active"):
            return int(steps / 1000)  # counts thousands of its steps (kWh) while its scaler_unit says Wh
        return steps

    @staticmethod
    def _encode(obj: CosemObject, value: int | str) -> bytes:
        if obj.type == "visible_string":
            return visible_string(str(value))
        if obj.type == "octet_string":
            return octet_string(str(value).encode("ascii"))
        return integer(TYPE_NAMES[obj.type], int(value))

    def _clock_attribute(self, attribute: int) -> apdu.Result:
        if attribute == 1:
            return octet_string(self._clock_ln or b"")
        if attribute == 2:
            return octet_string(self._date_time(self.timeline.rtc()))
        if attribute == 3:  # time_zone: the deviation of local time, in the profile's sign convention
            return integer(TYPE_NAMES["long"], self._deviation())
        if attribute == 4:  # status: all clear
            return integer(TYPE_NAMES["unsigned"], 0)
        return apdu.OBJECT_UNAVAILABLE

    def _deviation(self) -> int:
        minutes = round(self.utc_offset_s / 60)
        return -minutes if self.map.clock is None or self.map.clock.deviation == "local_to_utc" else minutes

    def _date_time(self, local: float) -> bytes:
        dt = datetime(1970, 1, 1) + timedelta(seconds=local)
        return date_time(dt.year, dt.month, dt.day, dt.isoweekday(), dt.hour, dt.minute, dt.second,
                         dt.microsecond // 10000, self._deviation())

    # ---- SET ---------------------------------------------------------------------------------------
    def set(self, attr: apdu.Attribute, data: bytes, may_set: set[str]) -> int:
        """Apply a SET as the association's rights allow; a Data-Access-Result."""
        if self._clock_ln is not None and attr.obis == self._clock_ln:
            if attr.class_id != CLASS_CLOCK:
                return apdu.OBJECT_CLASS_INCONSISTENT
            if attr.attribute != 2 or not self.profile.clock or not self.profile.clock.writable:
                return apdu.READ_WRITE_DENIED
            if "clock" not in may_set:
                return apdu.READ_WRITE_DENIED
            return self._set_clock(data)
        found = self._objects.get(attr.obis)
        if found is None:
            return apdu.OBJECT_UNDEFINED
        name, obj = found
        if attr.class_id != obj.class_id:
            return apdu.OBJECT_CLASS_INCONSISTENT
        reg = EnergyRegister.parse(name)
        if reg is not None and attr.attribute == obj.attribute and "settings" in may_set \
                and "dlms_energy_writable" in self.defects:
            return self._overwrite_energy(reg, data)
        if name not in self.map.settings or not obj.writable or attr.attribute != obj.attribute:
            return apdu.READ_WRITE_DENIED
        if "settings" not in may_set:
            return apdu.READ_WRITE_DENIED
        try:
            value = decode_whole(data)
        except AxdrError:
            return apdu.TYPE_UNMATCHED
        if value.tag != TYPE_NAMES[obj.type] or value.tag not in INTEGERS:
            return apdu.TYPE_UNMATCHED
        self.settings[name] = int(value.value)  # type: ignore[call-overload]
        self.persist(force=True)
        self.log(EventKind.CONFIG_CHANGE)
        return apdu.SUCCESS

    def _overwrite_energy(self, reg: EnergyRegister, data: bytes) -> int:
        """dlms_energy_writable: the register's count becomes the value written."""
        try:
            value = decode_whole(data)
        except AxdrError:
            return apdu.TYPE_UNMATCHED
        if value.tag not in INTEGERS:
            return apdu.TYPE_UNMATCHED
        self.refresh()
        counter = self.meter.counters[reg.channel.value]
        if reg.tariff is None:
            counter.total = max(0, int(value.value))  # type: ignore[call-overload]
        else:
            counter.tariffs[reg.tariff - 1] = max(0, int(value.value))  # type: ignore[call-overload]
        self._saved_metering = self.meter.snapshot()
        self.persist(force=True)
        return apdu.SUCCESS

    def _set_clock(self, data: bytes) -> int:
        try:
            value = decode_whole(data)
            if value.tag != OCTET_STRING:
                return apdu.TYPE_UNMATCHED
            year, month, day, hour, minute, second, hundredths, dev = parse_date_time(value.value)  # type: ignore[arg-type]
            shown = datetime(year, month, day, hour, minute, second, hundredths * 10000)
        except (AxdrError, ValueError):
            return apdu.TYPE_UNMATCHED
        local = (shown - datetime(1970, 1, 1)).total_seconds()
        if dev is not None:  # a deviation given: the instant is that local time in that zone -> our local time
            sign = 1 if self.map.clock is None or self.map.clock.deviation == "local_to_utc" else -1
            utc = local + sign * dev * 60
            local = utc + self.utc_offset_s
        self.refresh()  # what was metered up to now belongs to the old time of day
        if "clock_set_ignored" not in self.defects:
            self.timeline.set_rtc(local)
            self.meter.last_phys = self.timeline.physical()
            if self.load_profile is not None:
                self.load_profile.clock_set(local - self.utc_offset_s, self.interval_totals())
        self.persist(force=True)
        self.save_intervals()
        self.log(EventKind.CLOCK_SET)
        return apdu.SUCCESS

    # ---- control channel --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {"ok": True, "physical": self.timeline.physical(), "rtc_local": self.timeline.rtc(),
                "speed": self.timeline.speed, "nvm_writes": self.nvm.writes,
                "utc": datetime.now(UTC).isoformat(),
                "journal": self.journal.status() if self.journal else None,
                "load_profile": self.load_profile.status() if self.load_profile else None}


def _time_of_day(sod: float) -> Any:
    from datetime import time as tod

    s = int(sod) % 86400
    return tod(s // 3600, (s % 3600) // 60, s % 60)
