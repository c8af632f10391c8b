"""What one poll of the availability soak is, per kind of DUT.

A meter, heat meter or controller is polled as a head-end polls it: one ``read_many`` of every point
its profile maps, through the Device API. An AMR server is no ``Device`` (devices/amr/api.py): its
clients poll its API, so one poll is the read-only operation its profile declares in
``amr.availability_poll`` (the meter list, or its health), answered within the declared response
time — an answer later than that is one the client has given up on, counted unanswered. Either
way the soak talks over a connection of its own, through the rig's link fault, with no retries.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from harness.devices.api import Device, DeviceError, DeviceTimeout
from harness.quantities import DeviceKind
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive


class SoakPoller(Protocol):
    names: list[str]  # what each poll reads, for the evidence file
    what: str  # one poll in words, for the measurements' notes

    def poll(self) -> None:
        """One poll; raises ``DeviceError`` when it is not answered (in time)."""

    def close(self) -> None: ...


def declared_points(profile: Any) -> list[str]:
    """Every quantity the profile maps (the soak polls them all, as a head-end would)."""
    section = profile.opcua or getattr(profile, "dlms", None) or profile.modbus
    return list(section.points) if section is not None else []


def soak_timing(dut: Any) -> Any:
    return dut.timing.model_copy(update={"retries": 0})


class DevicePoller:
    """A meter's or controller's poll: ``read_many`` of every declared point."""

    def __init__(self, dut: Any) -> None:
        self.names = declared_points(dut.profile)
        if not self.names:
            raise Inconclusive(Msg("the profile declares no points: there is nothing to poll"))
        self.what = Msg("one read_many of every declared quantity ({n})", n=len(self.names))
        if dut.spec.transport.serial is not None:  # a serial line has one master: the main Device lets go of the
            dut.device.close()                      # port for the soak (a Modbus driver reconnects on its next use)
        self._device: Device = dut.extra_device("soak", soak_timing(dut), transcript=None)

    def poll(self) -> None:
        self._device.read_many(self.names)

    def close(self) -> None:
        self._device.close()


class AmrPoller:
    """An AMR server's poll: the profile's declared read-only API operation, within its declared response time."""

    def __init__(self, dut: Any) -> None:
        declared = dut.profile.amr.availability_poll
        if declared is None:
            raise Inconclusive(Msg("the profile declares no `amr.availability_poll` (operation, response_time_s): "
                                   "there is nothing to poll"))
        self.operation, self.limit_s = declared.operation, declared.response_time_s
        self.names = [f"amr:{self.operation}"]
        self.what = Msg("one `{operation}` request of the API, answered within the declared {limit:g} s",
                        operation=self.operation, limit=self.limit_s)
        self._server = dut.extra_device("soak", soak_timing(dut), transcript=None)
        self._session = None
        if self.operation == "meters":
            self._session = self._login(dut)

    def _login(self, dut: Any) -> Any:
        role = dut.profile.amr.admin_role
        cred = dut.spec.credentials.get(role)
        if cred is None or not cred.user or not cred.password:
            self._server.close()
            raise Inconclusive(Msg("{name}: the rig gives no credentials.{role} {{user, password}} to poll the "
                                   "meter list with", name=dut.name, role=role))
        try:
            return self._server.login(cred.user, cred.password)
        except DeviceError as exc:
            self._server.close()
            raise Inconclusive(Msg("the soak could not log in before it began: {error}", error=exc)) from None

    def poll(self) -> None:
        start = time.monotonic()
        if self._session is not None:
            self._session.meters()
        else:
            self._server.health()
        took = time.monotonic() - start
        if took > self.limit_s:
            raise DeviceTimeout(Msg("answered after {took:.3f} s, later than the declared response time {limit:g} s",
                                    took=took, limit=self.limit_s))

    def close(self) -> None:
        try:
            if self._session is not None:
                self._session.close()  # logs out; a server that does not answer it is closed all the same
        finally:
            self._server.close()


def poller_for(dut: Any) -> SoakPoller:
    if dut.profile.kind == DeviceKind.AMR_SERVER:
        return AmrPoller(dut)
    return DevicePoller(dut)
