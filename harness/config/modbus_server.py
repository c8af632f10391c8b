"""What a Modbus device declares about itself as a server: the function codes it serves, how it treats
unit ids, how fast it answers and how many TCP connections it holds at once.

Devices differ here as much as in their register maps (a gateway answers a missing unit with exception
0x0B, a meter stays silent; one meter takes FC6, another only FC16), so the protocol and robustness
suites take all of it from the profile. Function codes default to what the map implies: FC1 / FC2 / FC3 /
FC4 for the tables it uses, FC6 and FC16 when a register is writable, FC5 and FC15 when a coil is. Which
undeclared addresses exist (``reserved``) and where the device's addresses end (``address_space``) come from
``modbus_space.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.config.modbus_space import AddressSpace

# configured_only: answers only the rig's unit id and stays silent for any other (a meter on a bus);
# any: answers whatever unit id a request carries (many TCP-only devices ignore it);
# gateway: answers another unit id with exception 0x0B, gateway target device failed to respond.
UnitIdPolicy = Literal["configured_only", "any", "gateway"]

# The function codes the Modbus application protocol specification V1.1b3 assigns publicly.
PUBLIC_FUNCTION_CODES = (1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43)


class ModbusServerTraits(AddressSpace):
    """The server side of a Modbus profile (``modbus:`` keys next to the register map)."""

    function_codes: list[int] | None = Field(
        None, description="function codes the device serves, when not the ones its map implies (FC1/FC2/FC3/FC4 for "
        "the tables used, FC6 and FC16 when a register is writable, FC5 and FC15 when a coil is)")
    unit_id_policy: UnitIdPolicy = Field(
        "configured_only", description="a request for another unit id: configured_only — no answer; any — "
        "answered as the configured one; gateway — exception 0x0B")
    response_time_s: float | None = Field(
        None, gt=0, le=60, description="declared longest answer time of a request (default: the rig's "
        "request_timeout_s); the robustness suite holds the device to it while attacking it")
    max_connections: int | None = Field(
        None, ge=1, le=4096, description="Modbus/TCP connections the device serves at once; further ones may be "
        "refused, never lock it up")

    @field_validator("function_codes")
    @classmethod
    def _codes(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        bad = [c for c in v if not 1 <= c <= 127]
        if bad:
            raise ValueError(f"function codes are 1..127; got {bad}")
        if len(set(v)) != len(v):
            raise ValueError("a function code is listed twice")
        return sorted(v)

    @model_validator(mode="after")
    def _inside_space(self) -> ModbusServerTraits:
        m: Any = self  # the ModbusMap this is a base of
        if not hasattr(m, "spans"):
            return self
        for name, store in [("clock", m.clock), *m.stores().items()]:
            if store is not None and store.table.is_bit:
                raise ValueError(f"the {name} lives in registers: table holding or input, not {store.table.value}")
        self.check_space(m.spans())
        return self

    def served_function_codes(self, clock_writable: bool) -> list[int]:
        """The function codes the profile declares: ``function_codes``, else what its map implies — FC1 / FC2 /
        FC3 / FC4 for the tables it uses, FC6 and FC16 when a register is written (a writable point or setting,
        the clock when the profile's ``clock.writable``, an unlock register, a record window's selector), FC5
        and FC15 when a coil is."""
        if self.function_codes is not None:
            return list(self.function_codes)
        m: Any = self  # the ModbusMap this is a base of
        tables = {span[0] for span in m.spans()}
        declared = {**m.points, **m.settings}.values()
        writable = (any(p.writable and p.table.value == "holding" for p in declared)
                    or (m.clock is not None and clock_writable) or m.write_protection is not None
                    or any(getattr(store.layout, "selector", None) is not None for store in m.stores().values()))
        codes = {table.read_function for table in tables}
        codes |= {6, 16} if writable else set()
        codes |= {5, 15} if any(p.writable and p.table.value == "coil" for p in declared) else set()
        return sorted(codes)
