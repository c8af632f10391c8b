"""What a Modbus profile says about the addresses it does *not* map: ranges that exist on the device but are
not the profile's to judge (``reserved``), and the addresses the device implements at all (``address_space``).

The Modbus application protocol specification leaves it to the device which addresses exist. Many meters —
and libmodbus, which maps one contiguous block per table — answer registers nobody documents with data, so
"not declared" cannot mean "must answer exception 02". A profile says which undeclared ranges exist
(``reserved``: present, not judged) and, where the vendor documents it, where the implemented addresses end
(``address_space``): an address outside it is one the device itself declares absent — the only place a
conformance probe may write without risk of changing anything.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from harness.config.modbus_types import RegisterTable, Strict


class AddressRange(Strict):
    """A run of addresses of one table, both ends included (0-based, as on the wire)."""

    first: int = Field(ge=0, le=65535)
    last: int = Field(ge=0, le=65535)

    @model_validator(mode="after")
    def _ordered(self) -> AddressRange:
        if self.last < self.first:
            raise ValueError(f"last ({self.last}) is below first ({self.first})")
        return self

    def covers(self, address: int, count: int = 1) -> bool:
        return self.first <= address and address + count - 1 <= self.last

    def describe(self) -> str:
        return f"{self.first}..{self.last}"


TableRanges = dict[RegisterTable, list[AddressRange]]


class AddressSpace(Strict):
    """The undeclared addresses of a Modbus profile (``modbus.reserved``, ``modbus.address_space``)."""

    reserved: TableRanges = Field(
        default_factory=dict, description="per table (holding, input, coil, discrete_input): ranges that exist on "
        "the device but hold nothing the profile declares — present, not judged (KZ-68-03 never probes them)")
    address_space: dict[RegisterTable, AddressRange] = Field(
        default_factory=dict, description="per table: the addresses the device implements; every address outside "
        "is declared absent (answered with exception 02), so probes may write there without changing anything")

    def reserved_in(self, table: RegisterTable) -> list[AddressRange]:
        return list(self.reserved.get(table, []))

    def space_of(self, table: RegisterTable) -> AddressRange | None:
        return self.address_space.get(table)

    def check_space(self, spans: list[tuple[RegisterTable, int, int, str]]) -> None:
        """Every declared run and every reserved range lies inside its table's declared address space."""
        for table, space in self.address_space.items():
            for t, address, count, name in spans:
                if t == table and not space.covers(address, count):
                    raise ValueError(f"{name} ({table.value} {address}+{count}) lies outside the declared "
                                     f"address_space.{table.value} {space.describe()}")
            for r in self.reserved_in(table):
                if not space.covers(r.first, r.last - r.first + 1):
                    raise ValueError(f"reserved {table.value} range {r.describe()} lies outside the declared "
                                     f"address_space.{table.value} {space.describe()}")
