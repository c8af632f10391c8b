"""How a Modbus meter guards its clock and settings against writes from anyone on the bus (cl. 66, 78, 94).

Meters that protect writes over Modbus mostly do it the same way: a password written to a holding
register opens a write session, which closes a while after the unlock (or after the last write).
What differs is where that register is, how the password is encoded and how long the session lasts,
so the profile declares it; the password itself is the lab's (the rig's ``credentials.unlock``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.modbus_types import DataType, ModbusPoint, Strict, WordOrder

Protected = Literal["clock", "settings"]
PASSWORD_TYPES = ("u16", "u32", "u64", "string")


class UnlockRegister(Strict):
    """The holding register(s) the password is written to: a number (a PIN) or ASCII text."""

    address: int = Field(ge=0, le=65535, description="0-based holding register address as sent on the wire")
    type: Literal["u16", "u32", "u64", "string"] = "u16"
    word_order: WordOrder = WordOrder.BIG
    length: int | None = Field(None, ge=1, le=32, description="registers, for type string only (2 characters each)")

    @model_validator(mode="after")
    def _check(self) -> UnlockRegister:
        if (self.type == "string") != (self.length is not None):
            raise ValueError("`length` is needed for type string, and applies to it only")
        if self.address + self.register_count > 65536:
            raise ValueError("the unlock register runs past register 65535")
        return self

    @property
    def register_count(self) -> int:
        return self.length if self.length is not None else DataType(self.type).register_count

    def as_point(self) -> ModbusPoint:
        """The register as a writable point, so either side encodes a password with its own point codec."""
        return ModbusPoint(address=self.address, type=DataType(self.type), word_order=self.word_order,
                           length=self.length, writable=True)

    def password_value(self, password: str) -> int | str:
        """The password as the register holds it. Raises ValueError when it cannot be written there
        (digits only for a numeric register, within its range; printable ASCII that fits for text)."""
        if self.type == "string":
            assert self.length is not None
            if not password.isascii() or not password.isprintable() or len(password) > 2 * self.length:
                raise ValueError(f"a password for this unlock register is printable ASCII of at most "
                                 f"{2 * self.length} characters")
            return password
        bits = 16 * DataType(self.type).register_count
        if not password.isdigit() or int(password) >= 1 << bits:
            raise ValueError(f"a password for this {self.type} unlock register is a number 0..{(1 << bits) - 1}")
        return int(password)

    def other_password(self, password: str) -> str:
        """A password of the register's form that is not ``password`` and tells nothing about it (it is sent,
        and kept in the transcript): what a negative check tries."""
        if self.type == "string":
            assert self.length is not None
            candidates = ["WRONG-PASSWORD"[: 2 * self.length], "wrong-password"[: 2 * self.length]]
        else:
            top = 1 << 16 * DataType(self.type).register_count
            candidates = [str(top - 1), str(top // 2)]
        return next(c for c in candidates if c != password)


class WriteProtection(Strict):
    """The meter's write protection: where the password goes, how long a session lasts, what it guards."""

    unlock: UnlockRegister = Field(description="a holding register; writing the right password opens a write session")
    session_s: float = Field(gt=0, le=86400, description="the session closes this long after the unlock "
                             "(or after its last protected write)")
    protects: list[Protected] = Field(min_length=1, description="what needs an open session: clock, settings")

    @model_validator(mode="after")
    def _check(self) -> WriteProtection:
        if len(set(self.protects)) != len(self.protects):
            raise ValueError("`protects` lists an item twice")
        return self

    def guards(self, what: Protected) -> bool:
        return what in self.protects
