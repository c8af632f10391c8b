"""The canonical vocabulary every suite, profile and report shares.

Suites speak only these names; a profile maps each name it declares to a protocol address.
Keeping the vocabulary in one place is what lets a suite written today certify a meter nobody
has seen yet: the meter's differences live in its profile, never in the suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DeviceKind(StrEnum):
    """What a DUT is; suites declare which kinds they apply to."""

    ELECTRICITY_METER = "electricity_meter"
    HEAT_METER = "heat_meter"
    CONTROLLER = "controller"
    DATA_CONCENTRATOR = "data_concentrator"
    AMR_SERVER = "amr_server"


class EnergyChannel(StrEnum):
    """The four energy registers cl. 95 asks for: active/reactive, import/export."""

    ACTIVE_IMPORT = "active_import"
    ACTIVE_EXPORT = "active_export"
    REACTIVE_IMPORT = "reactive_import"
    REACTIVE_EXPORT = "reactive_export"

    @property
    def symbol(self) -> str:
        """The symbol a metering engineer uses (IEC 62053 / OBIS notation)."""
        return {"active_import": "A+", "active_export": "A-", "reactive_import": "R+",
                "reactive_export": "R-"}[self.value]

    @property
    def unit(self) -> str:
        """Canonical unit of the channel's registers."""
        return "Wh" if self.value.startswith("active") else "varh"

    @property
    def power_unit(self) -> str:
        """Unit of the load that drives the channel."""
        return "W" if self.value.startswith("active") else "var"


TOTAL = "total"


@dataclass(frozen=True, order=True)
class EnergyRegister:
    """One cl. 95 energy register: a channel, total (tariff None) or one tariff T1..Tn."""

    channel: EnergyChannel
    tariff: int | None = None

    @property
    def name(self) -> str:
        """Canonical quantity name, e.g. ``active_import_total`` or ``reactive_export_t2``."""
        return f"{self.channel.value}_{TOTAL if self.tariff is None else f't{self.tariff}'}"

    @property
    def label(self) -> str:
        """Human label for reports, e.g. ``A+ T2``."""
        return f"{self.channel.symbol} {'total' if self.tariff is None else f'T{self.tariff}'}"

    @property
    def unit(self) -> str:
        return self.channel.unit

    @classmethod
    def parse(cls, name: str) -> EnergyRegister | None:
        """The register a canonical name denotes, or None if it is not an energy register."""
        for channel in EnergyChannel:
            prefix = channel.value + "_"
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if rest == TOTAL:
                return cls(channel)
            if rest.startswith("t") and rest[1:].isdigit() and int(rest[1:]) >= 1:
                return cls(channel, int(rest[1:]))
        return None


def energy_registers(tariff_count: int) -> list[EnergyRegister]:
    """Every register cl. 95 requires of a meter with ``tariff_count`` tariffs."""
    regs: list[EnergyRegister] = []
    for channel in EnergyChannel:
        regs.append(EnergyRegister(channel))
        regs.extend(EnergyRegister(channel, t) for t in range(1, tariff_count + 1))
    return regs


# Identity quantities: what a certificate names the DUT by.
SERIAL_NUMBER = "serial_number"
FIRMWARE_VERSION = "firmware_version"
IDENTITY_QUANTITIES = (SERIAL_NUMBER, FIRMWARE_VERSION)

# The device clock is a quantity of its own (it has a date-time encoding, not a scalar one).
CLOCK = "clock"

# Optional: which of the device's declared interfaces are up (a bit field; profile `interfaces`, cl. 84).
LINK_STATUS = "link_status"

# Optional: the tariff the device says is active (Schneider 4191, Siemens 211 …).
ACTIVE_TARIFF = "active_tariff"

# Heat meter quantities (cl. 96: thermal energy, thermal power, volume and mass of the heat
# carrier), plus the flow, temperatures and volume flow a heat meter measures them from
# (EN 1434; M-Bus VIFs in DEVICES.md). Canonical unit of each:
HEAT_ENERGY = "heat_energy"
HEAT_POWER = "heat_power"
VOLUME = "volume"
MASS = "mass"
FLOW_TEMPERATURE = "flow_temperature"
RETURN_TEMPERATURE = "return_temperature"
VOLUME_FLOW = "volume_flow"
HEAT_QUANTITIES: dict[str, str] = {
    HEAT_ENERGY: "Wh", HEAT_POWER: "W", VOLUME: "m3", MASS: "t",
    FLOW_TEMPERATURE: "degC", RETURN_TEMPERATURE: "degC", VOLUME_FLOW: "m3/h",
}
HEAT_RECORDED = (HEAT_ENERGY, HEAT_POWER, VOLUME, MASS)  # what cl. 96 names explicitly
HEAT_COUNTERS = (HEAT_ENERGY, VOLUME, MASS)  # accumulating registers: never decrease, kept in NVM

# Units a profile may declare, as factors to the canonical unit of their dimension.
UNIT_FACTORS: dict[str, tuple[str, float]] = {
    "Wh": ("Wh", 1.0),
    "kWh": ("Wh", 1e3),
    "MWh": ("Wh", 1e6),
    "varh": ("varh", 1.0),
    "kvarh": ("varh", 1e3),
    "Mvarh": ("varh", 1e6),
    "W": ("W", 1.0),
    "kW": ("W", 1e3),
    "var": ("var", 1.0),
    "kvar": ("var", 1e3),
    "1": ("1", 1.0),
    # Heat meters (cl. 96): thermal energy is canonically Wh like electrical energy, so one
    # vocabulary covers both; J/GJ are M-Bus VIF 0x08-0x0F units, Gcal the CIS billing unit
    # (international-table calorie, 4.1868 J, as used in Gcal tariffs).
    "J": ("Wh", 1.0 / 3600.0),
    "MJ": ("Wh", 1e6 / 3600.0),
    "GJ": ("Wh", 1e9 / 3600.0),
    "Gcal": ("Wh", 4.1868e9 / 3600.0),
    "m3": ("m3", 1.0),
    "l": ("m3", 1e-3),
    "t": ("t", 1.0),
    "kg": ("t", 1e-3),
    "degC": ("degC", 1.0),
    "m3/h": ("m3/h", 1.0),
    "l/h": ("m3/h", 1e-3),
}


# The most tariffs a profile may declare (``tariffs.count``); names of registers beyond it are not canonical.
MAX_TARIFFS = 8

# Every name a point may carry that is not an energy register (those follow EnergyRegister.name).
NAMED_QUANTITIES = (*IDENTITY_QUANTITIES, CLOCK, LINK_STATUS, ACTIVE_TARIFF, *HEAT_QUANTITIES)


def is_canonical(name: str) -> bool:
    """Whether ``name`` is a quantity of the shared vocabulary (spelt exactly as a suite asks for it)."""
    if name in NAMED_QUANTITIES:
        return True
    reg = EnergyRegister.parse(name)
    return reg is not None and reg.name == name and (reg.tariff or 0) <= MAX_TARIFFS


def canonical_quantities() -> list[str]:
    """Every canonical name, energy registers for up to MAX_TARIFFS tariffs included (for did-you-mean)."""
    return [*NAMED_QUANTITIES, *(r.name for r in energy_registers(MAX_TARIFFS))]


def to_canonical(unit: str) -> tuple[str, float]:
    """(canonical unit, factor) for a declared unit; KeyError names an unknown unit."""
    return UNIT_FACTORS[unit]


def canonical_unit_of(quantity: str) -> str | None:
    """The canonical unit a quantity must be expressed in, or None when it has no unit."""
    reg = EnergyRegister.parse(quantity)
    if reg is not None:
        return reg.unit
    return HEAT_QUANTITIES.get(quantity)
