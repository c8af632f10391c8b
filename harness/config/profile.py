"""Profile: what a device model is and declares (the PICS/PIXIT of DESIGN.md).

Only what a profile declares is exercised; a capability the Rules require and the profile does
not declare is a FAIL in the suites, not an N/A — so these models describe, they never excuse.
"""

from __future__ import annotations

import re
from datetime import time, timedelta, timezone

from pydantic import Field, field_validator, model_validator

from harness.config.amr import AmrSpec
from harness.config.availability import DeclaredAvailability
from harness.config.dlms_map import DlmsMap
from harness.config.documentation import Documentation
from harness.config.heat_meter import HeatMeterSpec
from harness.config.interfaces import Interfaces
from harness.config.modbus_map import ModbusMap, Strict
from harness.config.opcua_map import OpcuaMap
from harness.config.uplink import Uplink
from harness.quantities import CLOCK, DeviceKind, EnergyRegister

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_UTC_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


class TariffPeriod(Strict):
    """From this local time of day on, ``tariff`` is active (until the next period starts)."""

    start: str = Field(alias="from", description="HH:MM, device local time")
    tariff: int = Field(ge=1)

    @field_validator("start")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time of day HH:MM")
        return v

    @property
    def time_of_day(self) -> time:
        h, m = self.start.split(":")
        return time(int(h), int(m))


class Tariffs(Strict):
    """The tariff programme: how many tariffs and the daily time-of-day schedule."""

    count: int = Field(ge=1, le=8)
    schedule: list[TariffPeriod] = Field(min_length=1, description="daily switching times, any order")

    @model_validator(mode="after")
    def _check(self) -> Tariffs:
        starts = [p.start for p in self.schedule]
        if len(set(starts)) != len(starts):
            raise ValueError("schedule has two periods starting at the same time")
        for p in self.schedule:
            if p.tariff > self.count:
                raise ValueError(f"schedule uses T{p.tariff} but count is {self.count}")
        return self

    def sorted_schedule(self) -> list[TariffPeriod]:
        return sorted(self.schedule, key=lambda p: p.start)

    def tariff_at(self, local_time_of_day: time) -> int:
        """The tariff active at a local time of day."""
        periods = self.sorted_schedule()
        active = periods[-1].tariff  # before the first start of the day, yesterday's last period runs
        for p in periods:
            if p.time_of_day <= local_time_of_day:
                active = p.tariff
        return active


class ClockSpec(Strict):
    """Declared properties of the device clock."""

    utc_offset: str = Field("+00:00", description="offset of the device's local time, e.g. +05:00")
    writable: bool = False
    max_drift_s_per_day: float = Field(
        0.5, gt=0, description="declared accuracy; 0.5 s/day is IEC 62054-21's reference for time switches — a "
        "looser figure is set aside for that bound (conformance/bounds.py)"
    )

    @field_validator("utc_offset")
    @classmethod
    def _offset(cls, v: str) -> str:
        if not _UTC_OFFSET.match(v):
            raise ValueError(f"{v!r} is not a UTC offset like +05:00")
        return v

    @property
    def tzinfo(self) -> timezone:
        sign, hh, mm = _UTC_OFFSET.match(self.utc_offset).groups()  # type: ignore[union-attr]
        delta = timedelta(hours=int(hh), minutes=int(mm))
        return timezone(-delta if sign == "-" else delta)


class Profile(Strict):
    """One device model."""

    vendor: str
    model: str
    kind: DeviceKind
    description: str = ""
    tariffs: Tariffs | None = None
    clock: ClockSpec | None = None
    modbus: ModbusMap | None = None
    opcua: OpcuaMap | None = None
    dlms: DlmsMap | None = None
    amr: AmrSpec | None = Field(None, description="an AMR server's REST API, roles, exports and timings (kind "
                                "amr_server; config/amr.py)")
    uplink: Uplink | None = None
    interfaces: Interfaces | None = Field(
        None, description="main and reserve interface serving the same data (the peer switches; cl. 85)")
    documentation: Documentation | None = Field(
        None, description="registry entry, verification, certificates and documents of the model (cl. 50-93)")
    availability: DeclaredAvailability | None = Field(
        None, description="declared polling interval and recovery time after a link fault (cl. 67, 73)")
    heat: HeatMeterSpec = Field(
        default_factory=HeatMeterSpec, description="a heat meter's EN 1434 accuracy class (cl. 96); default class 3")

    @model_validator(mode="after")
    def _check(self) -> Profile:
        declared = [s for s in (self.modbus, self.opcua, self.dlms, self.amr) if s is not None]
        if len(declared) != 1:
            raise ValueError("declare exactly one protocol section: `modbus:`, `opcua:`, `dlms:` or `amr:`"
                             if declared else "no protocol section: declare `modbus:`, `opcua:`, `dlms:` or `amr:`")
        if (self.amr is not None) != (self.kind == DeviceKind.AMR_SERVER):
            raise ValueError("an `amr:` section belongs to kind amr_server, and kind amr_server needs one")
        if self.opcua is not None and CLOCK in self.opcua.points and self.clock is None:
            raise ValueError("an `opcua.points.clock` needs a `clock:` section (utc_offset, writable)")
        point_map = self.modbus or self.opcua or self.dlms  # an AMR server has no points of its own
        for name in point_map.points if point_map is not None else ():
            reg = EnergyRegister.parse(name)
            if reg and reg.tariff is not None and (self.tariffs is None or reg.tariff > self.tariffs.count):
                raise ValueError(f"point {name} names tariff T{reg.tariff}, beyond the declared tariffs")
        if self.interfaces is not None and self.interfaces.link_status is not None \
                and not self.declares(self.interfaces.link_status):
            raise ValueError(f"interfaces.link_status names {self.interfaces.link_status!r}, which is not a point")
        if self.modbus is not None and self.modbus.clock is not None and self.clock is None:
            raise ValueError("a `modbus.clock` mapping needs a `clock:` section (utc_offset, writable)")
        if self.dlms is not None and self.dlms.clock is not None and self.clock is None:
            raise ValueError("a `dlms.clock` object needs a `clock:` section (utc_offset, writable)")
        return self

    @property
    def maps_clock(self) -> bool:
        """The protocol section says where the device clock is (a Modbus map's clock, a DLMS Clock object)."""
        if self.dlms is not None:
            return self.dlms.clock is not None
        return self.modbus is not None and self.modbus.clock is not None

    @property
    def protocol(self) -> str:
        if self.amr is not None:
            return self.amr.adapter  # the built-in REST adapter ("amr") or a vendor's own (harness_add_drivers)
        return "opcua" if self.opcua is not None else "dlms" if self.dlms is not None else "modbus"

    @property
    def tariff_count(self) -> int:
        return self.tariffs.count if self.tariffs else 0

    def declares(self, quantity: str) -> bool:
        if self.opcua is not None:
            return quantity in self.opcua.points
        if self.dlms is not None:
            return quantity in self.dlms.points
        return self.modbus is not None and quantity in self.modbus.points
