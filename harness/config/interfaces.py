"""A device's communication interfaces when the *peer* switches between them (cl. 83–85).

A meter or controller with two interfaces (say Modbus TCP on Ethernet and Modbus RTU on RS-485)
serves the same data on both; the head-end switches to the reserve when the main fails. What the
device itself must do is declared here: keep serving on one interface while the other is lost,
notice the loss (after ``down_after_s`` without a valid request — the communication timeout
meters call "no communication"), show it in a link-status register and log it in its journal.
A device that pushes upstream and switches itself (a concentrator) declares ``uplink`` instead.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.modbus_types import Strict


class Interface(Strict):
    """One interface of the device."""

    transport: Literal["tcp", "serial"] = Field(description="what the rig must connect it with")
    status_bit: int | None = Field(None, ge=0, le=31, description="bit of the link-status point set while it is up")
    journal_subject: int | None = Field(
        None, ge=0, description="the `subject` detail the journal logs with this interface's channel_down/up")


class Interfaces(Strict):
    """Main and reserve interface serving the same data; the peer chooses which one it uses."""

    main: Interface
    reserve: Interface
    down_after_s: float = Field(gt=0, le=3600, description="silence after which the device reports an interface "
                                "down (and logs channel_down); the next valid request brings it up")
    link_status: str | None = Field(None, description="name of the point (u16/u32 bit field) showing which "
                                    "interfaces are up; the bits are each interface's status_bit")

    @model_validator(mode="after")
    def _check(self) -> Interfaces:
        if self.link_status is not None:
            missing = [name for name, i in self.named() if i.status_bit is None]
            if missing:
                raise ValueError(f"link_status is declared but {', '.join(missing)} has no status_bit")
            if self.main.status_bit == self.reserve.status_bit:
                raise ValueError("main and reserve share one status_bit")
        return self

    def named(self) -> list[tuple[str, Interface]]:
        return [("main", self.main), ("reserve", self.reserve)]
