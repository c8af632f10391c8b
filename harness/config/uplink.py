"""Uplink: how a pushing device (a data concentrator) declares its upstream channels (cl. 83–85).

The declared times are the limits the failover suite measures against: a device is judged on what
it promises here, so every number is a promise, not a tuning knob of the harness.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.modbus_map import Strict


class Uplink(Strict):
    """The upstream (head-end) side of a device that pushes its interval records over MQTT."""

    protocol: Literal["mqtt"] = "mqtt"
    switching: Literal["device", "peer"] = Field(
        "device", description="device: the DUT itself moves between main and reserve; peer: a meter with two "
        "interfaces, each pushing on its own")
    topic_prefix: str = Field(
        min_length=1, pattern=r"^[^#+\s]+$",
        description="records on {prefix}/{serial}/interval, link status on {prefix}/{serial}/status")
    qos: Literal[1] = Field(1, description="records are published at QoS 1 and count as delivered on PUBACK")
    switchover_s: float = Field(gt=0, le=3600, description="declared: main lost -> first record on the reserve")
    return_s: float = Field(gt=0, le=3600, description="declared: main back -> records on main again")
    status_interval_s: float = Field(1.0, gt=0, le=3600, description="link status published at least this often")
    buffer_capacity: int = Field(ge=1, le=10_000_000,
                                 description="records kept in non-volatile memory while no channel is up")

    @model_validator(mode="after")
    def _check(self) -> Uplink:
        if self.topic_prefix.startswith("/") or self.topic_prefix.endswith("/"):
            raise ValueError("topic_prefix takes no leading or trailing '/'")
        return self

    def topic(self, serial: int | str, kind: Literal["interval", "status"]) -> str:
        return f"{self.topic_prefix}/{serial}/{kind}"
