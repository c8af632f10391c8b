"""What the update checks share (cl. 70): the rig's vendor images and the forger for their format, the
update steps with bounded waits, the audit entries a step left, and the way back to the version the
device ran before a check.

Everything goes through the profile's ``opcua.update`` declaration and the driver's update helpers
(``harness.devices.opcua_update``): the states are the contract's (``UPDATE_STATES``), the images the
rig's, the bounds the rig's request timeout and the profile's ``health_check_s`` — nothing here knows
the simulator, so the same checks run against a real controller on a bench that allows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness import registry
from harness.config.opcua_map import UPDATE_STATES, OpcuaUpdate, Operation
from harness.devices.api import DeviceError, DeviceRefused, NotDeclared
from harness.events import AuditEntry, AuditKind
from harness.reporting.outcome import exc_text
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

RESTING = ("Idle", "RolledBack", "Failed")  # nothing in progress and nothing waiting for the operator
IN_PROGRESS = ("Transferring", "Installing", "Activating")  # a step the device is working through
TRIAL = ("Activating", "Confirming")  # an activated version runs on trial
SETTLED = tuple(s for s in UPDATE_STATES if s not in IN_PROGRESS)
STEP_TIMEOUTS = 10  # a step the device finishes by itself may take this many request timeouts (the driver's
# bound for an Install or Activate call), so every wait here is bounded by the rig's own timing
POLL_S = 0.1
CLOCK_SLACK_S = 1.0  # the audit-log mark starts this much before the device clock read (a coarse clock)


class StepFailed(AssertionError):
    """An update step with a valid image did not end where the contract says it must (a FAIL)."""


@dataclass(frozen=True)
class VendorImage:
    """One of the rig's firmware images (``duts.<dut>.firmware.<which>``) and the version it carries."""

    which: str
    path: Path
    data: bytes
    version: str


@dataclass(frozen=True)
class Offer:
    """What the device did with an image it was offered: where it refused it, or that it installed it."""

    refused_at: str | None  # transfer | install, or None: the device installed it
    answer: str  # the refusal as the device gave it, or the state the install reached
    state: str | None  # the update state afterwards
    seconds: float

    @property
    def refused(self) -> bool:
        return self.refused_at is not None

    def describe(self) -> str:
        where = Msg("refused at {step}", step=self.refused_at) if self.refused else Msg("installed")
        return Msg("{where}: {answer} (state then {state}, {seconds:.2f} s)", where=where, answer=self.answer,
                   state=self.state or "?", seconds=self.seconds)


class Updater:
    """One DUT's update declaration, the driver's update helpers, the rig's images and the forger for their
    format, as the checks use them. ``original`` is the version running when it was made: where
    ``return_to`` brings the device back at the end of a check."""

    def __init__(self, dut: Any) -> None:
        opcua = getattr(dut.profile, "opcua", None)
        if opcua is None or opcua.update is None:
            raise NotDeclared(f"{dut.name}: profile {dut.profile.model} declares no software update (opcua.update); "
                              "cl. 70 requires secure software update with rollback")
        self.dut = dut
        self.spec: OpcuaUpdate = opcua.update
        self.steps = dut.device.update  # harness.devices.opcua_update.FirmwareUpdate
        self.step_s = dut.timing.request_timeout_s * STEP_TIMEOUTS
        self.role = next((r for r in opcua.roles_allowing(Operation.FIRMWARE) if r in dut.spec.credentials), None)
        self._forger: Any = None
        self.original = self.steps.running_version()

    # ---- what the rig provides ----------------------------------------------------------------------
    @property
    def account(self) -> str | None:
        """The user name the harness updates as (None: a certificate account, whose name the device makes)."""
        cred = self.dut.spec.credentials.get(self.role) if self.role else None
        return cred.user if cred else None

    @property
    def forger(self) -> Any:
        """The ``firmware`` fault injector for the profile's ``image_format`` (forges bad images, reads versions)."""
        if self._forger is None:
            injectors = registry.fault_injectors("firmware")
            spec = injectors.get(self.spec.image_format)
            if spec is None:
                raise Inconclusive(Msg("no firmware injector knows image format {image_format!r} "
                                       "(opcua.update.image_format); installed: {value}",
                                       image_format=self.spec.image_format, value=', '.join(injectors) or 'none'))
            self._forger = spec.factory(self.dut)
        return self._forger

    def image(self, which: str) -> VendorImage:
        """The rig's ``which`` image (current, next, below_min, unhealthy), ``{state_dir}`` filled in; INCONCLUSIVE
        naming the rig field when the bench has none."""
        field = f"duts.{self.dut.name}.firmware"
        firmware = self.dut.spec.firmware
        if firmware is None:
            raise Inconclusive(Msg("the rig gives no vendor firmware images ({field}), so no update can be offered",
                                   field=field))
        path = firmware.path(which, self.dut.state_dir)
        if path is None:
            raise Inconclusive(Msg("the rig gives no `{which}` image ({field}.{which})", which=which, field=field))
        if not path.is_file():
            raise Inconclusive(Msg("the rig's `{which}` image {path} does not exist ({field}.{which})", which=which,
                                   path=path, field=field))
        data = path.read_bytes()
        try:
            version = self.forger.version_of(data)
        except ValueError as exc:
            raise Inconclusive(Msg("the rig's `{which}` image {path} is not a valid {image_format} image: {exc}",
                                   which=which, path=path, image_format=self.spec.image_format, exc=exc)) from None
        return VendorImage(which, path, data, version)

    # ---- steps --------------------------------------------------------------------------------------
    def reach(self, wanted: tuple[str, ...], what: str, timeout_s: float | None = None) -> str:
        """Wait until the state is one of ``wanted``; StepFailed if it comes to rest elsewhere or never gets there."""
        limit = self.step_s if timeout_s is None else timeout_s
        state = self.steps.wait_state((*wanted, *RESTING), limit)
        if state in wanted:
            return state
        if state is None:
            raise StepFailed(Msg("{what}: still {value} after {limit:g} s (expected {wanted})", what=what,
                                 value=self.state_or_away(), limit=limit, wanted=Msg.joined(" | ", wanted)))
        raise StepFailed(Msg("{what}: the device went to {state} (expected {wanted})", what=what, state=state,
                             wanted=Msg.joined(" | ", wanted)))

    def state_or_away(self) -> str:
        try:
            return self.steps.state()
        except DeviceError as exc:
            return f"unreadable ({exc})"

    def update_to(self, image: VendorImage, check: Any = None) -> float:
        """Transfer, install, activate and confirm ``image``; the seconds it took. With ``check`` every step is
        recorded as a measurement; a step that does not end where it must raises (a FAIL naming the step)."""
        t0 = time.monotonic()
        what = f"{image.which} image {image.version}"
        state = ""
        steps: list[tuple[str, Callable[[], object], tuple[str, ...]]] = [
            ("transfer", lambda: self.steps.transfer(image.data), ("Transferred",)),
            ("install", self.steps.install, ("Installed",)),
            ("activate", self.steps.activate, ("Confirming", "Idle")),
        ]
        if self.spec.methods.confirm is not None:
            steps.append(("confirm", self.steps.confirm, ("Idle",)))
        for name, call, wanted in steps:
            if name == "confirm" and state == "Idle":
                break  # the device kept the new version without being asked
            t = time.monotonic()
            try:
                call()
                state = self.reach(wanted, f"{name} of the {what}")
            except DeviceError as exc:
                if check is not None:
                    check.measure(Msg("{name} of {version}", name=name,
                                      version=image.version), Msg("refused: {exc}", exc=exc), passed=False,
                                  limit=" | ".join(wanted))
                raise
            except StepFailed as exc:
                if check is not None:
                    check.measure(Msg("{name} of {version}", name=name,
                                      version=image.version), exc_text(exc), passed=False, limit=" | ".join(wanted))
                raise
            if check is not None:
                check.measure(Msg("{name} of {version}", name=name,
                                  version=image.version), state, passed=True, limit=" | ".join(wanted),
                              note=Msg("{value:.2f} s", value=time.monotonic() - t))
        return time.monotonic() - t0

    def offer(self, data: bytes) -> Offer:
        """Transfer and install ``data``; where the device refused it (a Bad status, or Failed after Install
        returned), or that it installed it. Never activates."""
        t0 = time.monotonic()
        for step, call in (("transfer", lambda: self.steps.transfer(data)), ("install", self.steps.install)):
            try:
                call()
            except DeviceRefused as exc:
                state = self.steps.wait_state(SETTLED, self.step_s)
                return Offer(step, _without_device(exc), state, time.monotonic() - t0)
        state = self.steps.wait_state(("Installed", *RESTING), self.step_s)
        if state == "Installed":
            return Offer(None, "Installed", state, time.monotonic() - t0)
        return Offer("install", Msg("Install returned, then the device showed {state}",
                                    state=state or self.state_or_away()),
                     state, time.monotonic() - t0)

    def return_to(self, version: str | None = None) -> None:
        """Back to ``version`` (default ``original``) the cheapest way the device offers: keep it if it runs
        (confirming a trial of it), roll back to it, else install the rig's ``current`` image."""
        version = version or self.original
        self.steps.wait_state(tuple(s for s in UPDATE_STATES if s != "Installing"), self.step_s)
        if self.steps.running_version() == version:
            if self.steps.state() == "Confirming" and self.spec.methods.confirm is not None:
                self.steps.confirm()
            return
        if self.spec.previous_version is None or self.steps.previous_version() == version:
            try:
                self.steps.rollback()
                self.steps.wait_state(SETTLED, self.step_s)
            except DeviceError:
                pass  # refused (e.g. an image is installed but not active): install `current` instead
            if self.steps.running_version() == version:
                return
        current = self.image("current")
        if current.version != version:
            raise StepFailed(Msg("cannot return to {version}: the rig's current image is {version2}", version=version,
                                 version2=current.version))
        self.update_to(current)


class AuditMark:
    """Where the audit log stood before a step, so the entries the step left are told from older ones: by
    the device's own clock (minus a slack for a coarse clock) and by what was already there."""

    def __init__(self, device: Any) -> None:
        self.device = device
        try:
            self.start = device.read_clock().value - timedelta(seconds=CLOCK_SLACK_S)
        except NotDeclared:
            self.start = None  # no clock point: the whole log, minus what was there
        self.seen = {_key(e) for e in device.read_audit_log(start=self.start)}

    def entries(self, kind: AuditKind | None = None) -> list[AuditEntry]:
        new = [e for e in self.device.read_audit_log(start=self.start) if _key(e) not in self.seen]
        return [e for e in new if kind is None or e.kind == kind]


def _key(e: AuditEntry) -> tuple[Any, ...]:
    return (e.time, e.category, e.user, e.outcome, e.subject, str(e.old), str(e.new), str(e.raw.get("EventId")))


def names_version(entry: AuditEntry, version: str) -> bool:
    """Does the entry concern ``version`` (its old or new value, or any text the device put in it)?"""
    if version in (str(entry.old), str(entry.new)):
        return True
    return any(isinstance(v, str) and version in v for v in entry.raw.values())


def moved_to(entry: AuditEntry, version: str) -> bool:
    """Does the entry record the device going to ``version`` (its new value when the profile maps one)?"""
    return str(entry.new) == version if entry.new is not None else names_version(entry, version)


def wait_for(probe: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float) -> tuple[Any, float | None]:
    """Poll ``probe`` until ``done`` says yes: (last value, seconds it took) or (last value, None) after
    ``timeout_s``. A device that does not answer meanwhile is polled on."""
    t0 = time.monotonic()
    value: Any = None
    while True:
        try:
            value = probe()
            if done(value):
                return value, time.monotonic() - t0
        except DeviceError:
            pass
        if time.monotonic() - t0 >= timeout_s:
            return value, None
        time.sleep(POLL_S)


def _without_device(exc: DeviceRefused) -> str:
    """A refusal's text without the device name it starts with ("plc: …"): translatable when the driver wrote a Msg
    ("{device}: {refusal}", devices/opcua_session.as_device_error)."""
    text = exc_text(exc)
    if isinstance(text, Msg) and isinstance(text.values.get("refusal"), Msg):
        return text.values["refusal"]
    return str(exc).split(": ", 1)[-1]
