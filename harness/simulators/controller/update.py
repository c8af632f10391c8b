"""Software update (cl. 70): transfer, verify, install to the inactive slot, activate, confirm, roll back.

The state machine (the contract's ``update.state`` strings)::

    Idle ─Transfer(offset 0)→ Transferring ─last chunk→ Transferred ─Install→ Installing ─slot written→ Installed
    Installed ─Activate→ Confirming (healthy: waits for Confirm)  | Activating (its health check fails)
    Confirming ─Confirm→ Idle;  no Confirm within health_check_s → automatic rollback → RolledBack
    Activating ─health check failed→ automatic rollback (within health_check_s) → RolledBack
    Rollback (on command, from a committed or trial version) → RolledBack;  a refused image → Failed

Install verifies before it writes anything: format, signature with the vendor key (the device's
trust anchor, written at the factory), payload integrity, model, and the version policy
(``min_version`` / ``below_min_version``). "Activating" an image is the simulated reboot: the
running version changes at once, the OPC UA sessions survive. Deadlines run in device time.

Power cut (SIGKILL) anywhere leaves a bootable valid version: a transfer lives in RAM; a slot is
written aside and renamed into place (slots.py); the boot record is written last; at power-up an
unconfirmed (trial) activation boots back to the previous slot. Rejected images are security
events, every other step a firmware event. Defects: ``update_accepts_unsigned``,
``update_accepts_corrupted``, ``update_no_auto_rollback``, ``update_rollback_loses_config``
(the rollback callback is told), ``update_power_loss_bricks`` (slot written in place with the
boot pointer switched first: a cut during install boots a half-written slot, version 0.0.0),
``update_not_logged`` (a user's successful steps leave no firmware_update entry),
``update_accepts_downgrade`` (no version policy), ``update_no_indication`` (AvailableVersion never set,
although the new version is logged).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asyncua import ua

from harness.firmware.image import (
    FirmwareImage,
    ImageError,
    ImageFormatError,
    ImageIntegrityError,
    PublicKey,
    UnsignedImageError,
    check_integrity,
    check_signature,
    parse_image,
    verify_image,
    version_key,
)
from harness.simulators.controller.audit import SYSTEM
from harness.simulators.controller.profile import UpdateSpec
from harness.simulators.controller.slots import SlotStore, other

MAX_IMAGE_BYTES = 64 * 1024 * 1024
FLASH_BYTES_PER_S = 1024 * 1024  # a slot write takes image size / this (0.5 s for the vendor kit's images)
FLASH_STEPS = 8
BRICKED_VERSION = "0.0.0"  # what a device booted from a half-written slot reports
HEALTH_FAIL_AFTER_S = 1.0  # an unhealthy image fails its self-test this long after activation (capped at half
# the declared health_check_s)

Log = Callable[..., None]  # log(kind, user, outcome, message, old=None, new=None)


class Refused(Exception):
    """A method call the device refuses (update steps, bad arguments); ``code`` is the OPC UA status it
    answers with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class DeviceIdentity:
    vendor: str
    model: str


class SoftwareUpdate:
    def __init__(self, spec: UpdateSpec, state_dir: Path, vendor_key: PublicKey, identity: DeviceIdentity,
                 defects: set[str], now: Callable[[], float], log: Log, on_rollback: Callable[[], None]) -> None:
        self.spec, self.vendor_key, self.identity, self.defects = spec, vendor_key, identity, defects
        self.now, self.on_rollback = now, on_rollback
        self.log = _without_user_steps(log) if "update_not_logged" in defects else log
        self.slots = SlotStore(state_dir)
        self.staging = bytearray()
        self.staging_total = 0
        self.running_version = BRICKED_VERSION
        self.deadline: float | None = None  # Confirming: rollback when no Confirm by then
        self.fail_at: float | None = None  # Activating: the health check fails then
        self.writer: asyncio.Task[None] | None = None

    # ---- power-up --------------------------------------------------------------------------------
    def power_on(self, factory_image: bytes) -> None:
        """The bootloader: settle whatever a power cut interrupted, then boot the active slot."""
        rec = self.slots.record
        if self.slots.fresh:
            factory = parse_image(factory_image)
            rec.update({"active": "a", "trial": False, "state": "Idle", "available": "", "pending_boot": None})
            self.slots.install_factory("a", factory_image, self._info(factory))
            self.slots.set_slot_info("b", None)
            self.slots.save()
        for slot in self.slots.discard_partial():
            self.log("firmware_update", SYSTEM, False, f"install into slot {slot.upper()} was interrupted by a power "
                     "loss; the half-written slot was discarded")
        if rec.get("pending_boot"):  # update_power_loss_bricks: the pointer moved before the slot was written
            rec["active"], rec["pending_boot"], rec["trial"] = rec["pending_boot"], None, False
        if rec.get("trial"):
            if "update_no_auto_rollback" in self.defects:
                rec["state"] = "Confirming"
            else:
                failed = rec["active"]
                rec["active"], rec["trial"], rec["state"] = other(failed), False, "RolledBack"
                info = self.slots.slot_info(failed)
                if info:
                    self.slots.set_slot_info(failed, {**info, "bootable": False})
                self.log("firmware_update", SYSTEM, True, f"activation of {info['version'] if info else '?'} was "
                         "not confirmed before a power loss: booted back to the previous slot",
                         old=info["version"] if info else None, new=self._slot_version(other(failed)))
                self.on_rollback()
        if rec.get("state") in ("Transferring", "Transferred", "Installing", "Activating"):
            rec["state"] = "Idle"
        self.slots.save()
        try:
            image = parse_image(self.slots.read(rec["active"]) or b"")
            check_integrity(image)
            self.running_version = image.version
        except ImageError as exc:
            self.running_version = BRICKED_VERSION
            rec["state"] = "Failed"
            self.slots.save()
            self.log("firmware_update", SYSTEM, False, f"boot slot {rec['active'].upper()} holds no valid image "
                     f"({exc}); running the recovery loader, version {BRICKED_VERSION}")
        if rec.get("state") == "Confirming":
            self.deadline = self.now() + self.spec.health_check_s
        self._clear_available_if_reached()

    # ---- what the device shows ---------------------------------------------------------------------
    @property
    def state(self) -> str:
        return str(self.slots.record.get("state", "Idle"))

    @property
    def previous_version(self) -> str:
        return self._slot_version(other(self.slots.record["active"]), bootable_only=True) or ""

    @property
    def available_version(self) -> str:
        return str(self.slots.record.get("available", ""))

    def status(self) -> dict[str, object]:
        rec = self.slots.record
        return {"state": self.state, "running": self.running_version, "previous": self.previous_version,
                "available": self.available_version, "active_slot": rec.get("active"), "trial": rec.get("trial"),
                "slots": rec.get("slots")}

    # ---- methods -----------------------------------------------------------------------------------
    def transfer(self, user: str, data: bytes, offset: int, total: int) -> None:
        self._not_while_busy("Transfer")
        if len(data) > self.spec.chunk_bytes:
            raise Refused(ua.StatusCodes.BadInvalidArgument,
                                f"chunk of {len(data)} bytes exceeds chunk_bytes {self.spec.chunk_bytes}")
        if not 0 < total <= MAX_IMAGE_BYTES:
            raise Refused(ua.StatusCodes.BadInvalidArgument, f"total {total} is not in 1..{MAX_IMAGE_BYTES}")
        if offset == 0:
            self.staging, self.staging_total = bytearray(), total
            self._set_state("Transferring")
            self.log("firmware_update", user, True, f"image transfer started ({total} bytes)")
        elif self.state != "Transferring" or offset != len(self.staging) or total != self.staging_total:
            raise Refused(ua.StatusCodes.BadInvalidArgument,
                                f"chunk at offset {offset} of {total} does not continue the transfer "
                                f"({len(self.staging)} of {self.staging_total} bytes received)")
        if offset + len(data) > total:
            raise Refused(ua.StatusCodes.BadInvalidArgument, "chunk runs past the announced total")
        self.staging += data
        if len(self.staging) == total:
            self._set_state("Transferred")
            self._announce(bytes(self.staging), user)

    def install(self, user: str) -> None:
        if self.state != "Transferred":
            raise Refused(ua.StatusCodes.BadInvalidState,
                                f"Install needs a transferred image (state {self.state})")
        data = bytes(self.staging)
        try:
            image = self._verify(data)
        except Refused as refused:
            self._set_state("Failed")
            self.log("security_event", user, False, f"firmware image rejected: {refused.reason}")
            raise
        slot = other(self.slots.record["active"])
        self._set_state("Installing")
        self.log("firmware_update", user, True, f"installing {image.version} into slot {slot.upper()}",
                 old=self.running_version, new=image.version)
        self.writer = asyncio.create_task(self._write_slot(slot, data, image, user))

    def activate(self, user: str) -> None:
        if self.state != "Installed":
            raise Refused(ua.StatusCodes.BadInvalidState,
                                f"Activate needs an installed image (state {self.state})")
        rec = self.slots.record
        target = other(rec["active"])
        info = self.slots.slot_info(target)
        if not info:
            raise Refused(ua.StatusCodes.BadInvalidState, f"slot {target.upper()} holds no image")
        old = self.running_version
        rec["active"], rec["trial"] = target, True
        healthy = info.get("health", "ok") == "ok"
        rec["state"] = "Confirming" if healthy else "Activating"
        self.slots.save()  # the boot pointer, last and fsynced
        self.running_version = str(info["version"])
        now = self.now()
        self.deadline = now + self.spec.health_check_s if healthy else None
        self.fail_at = None if healthy else now + min(HEALTH_FAIL_AFTER_S, self.spec.health_check_s / 2)
        self.log("firmware_update", user, True, f"activated {self.running_version} (was {old}); awaiting "
                 f"confirmation within {self.spec.health_check_s:g} s", old=old, new=self.running_version)
        self._clear_available_if_reached()

    def confirm(self, user: str) -> None:
        if self.state == "Activating":
            self.log("firmware_update", user, False, f"confirmation of {self.running_version} refused: its health "
                     "check fails")
            raise Refused(ua.StatusCodes.BadInvalidState, f"{self.running_version} fails its health check")
        if self.state != "Confirming":
            raise Refused(ua.StatusCodes.BadInvalidState, f"nothing to confirm (state {self.state})")
        self.slots.record["trial"] = False
        self._set_state("Idle")
        self.deadline = None
        self.log("firmware_update", user, True, f"confirmed {self.running_version}", new=self.running_version)

    def rollback(self, user: str, reason: str = "on command", automatic: bool = False) -> None:
        if self.state in ("Installing", "Installed"):
            raise Refused(ua.StatusCodes.BadInvalidState, f"Rollback not possible while {self.state}: the "
                                "inactive slot holds the new image")
        rec = self.slots.record
        target = other(rec["active"])
        version = self._slot_version(target, bootable_only=True)
        if version is None:
            raise Refused(ua.StatusCodes.BadInvalidState, "no previous version to roll back to")
        left, old = rec["active"], self.running_version
        if automatic:
            info = self.slots.slot_info(left)
            if info:
                self.slots.set_slot_info(left, {**info, "bootable": False})
        rec["active"], rec["trial"], rec["state"] = target, False, "RolledBack"
        self.slots.save()
        self.running_version, self.deadline, self.fail_at = version, None, None
        self.on_rollback()
        self.log("firmware_update", SYSTEM if automatic else user, True,
                 f"rolled back from {old} to {version} ({reason})", old=old, new=version)

    def tick(self) -> None:
        """Health check and confirmation deadlines (device time)."""
        now = self.now()
        auto = "update_no_auto_rollback" not in self.defects
        if self.state == "Activating" and self.fail_at is not None and now >= self.fail_at:
            self.fail_at = None
            self.log("firmware_update", SYSTEM, False, f"health check of {self.running_version} failed")
            if auto:
                self.rollback(SYSTEM, "health check failed", automatic=True)
        elif self.state == "Confirming" and self.deadline is not None and now >= self.deadline:
            self.deadline = None
            if auto:
                self.rollback(SYSTEM, f"not confirmed within {self.spec.health_check_s:g} s", automatic=True)

    # ---- inside --------------------------------------------------------------------------------------
    def _verify(self, data: bytes) -> FirmwareImage:
        """What the device checks before it writes a byte (with the seeded defects' holes)."""
        try:
            image = parse_image(data)
        except ImageFormatError as exc:
            raise Refused(ua.StatusCodes.BadDecodingError, str(exc)) from None
        try:
            if "update_accepts_corrupted" in self.defects:
                try:  # the defect: integrity first, and its error path installs without the signature check
                    check_integrity(image)
                except ImageIntegrityError:
                    return self._policy(image)
            if not image.signature and "update_accepts_unsigned" in self.defects:
                check_integrity(image)  # the defect: a signature is checked only when there is one
            else:
                check_signature(image, self.vendor_key)
                check_integrity(image)
        except UnsignedImageError as exc:
            raise Refused(ua.StatusCodes.BadSecurityChecksFailed, str(exc)) from None
        except ImageError as exc:
            raise Refused(ua.StatusCodes.BadSecurityChecksFailed, str(exc)) from None
        return self._policy(image)

    def _policy(self, image: FirmwareImage) -> FirmwareImage:
        h = image.header
        if h.model != self.identity.model or h.vendor != self.identity.vendor:
            raise Refused(ua.StatusCodes.BadNotSupported, f"image is for {h.vendor} {h.model}, this device is "
                                f"{self.identity.vendor} {self.identity.model}")
        low = self.spec.min_version
        if "update_accepts_downgrade" in self.defects:
            return image  # the defect: the version policy is never applied
        if low and self.spec.below_min_version == "refuse" and version_key(h.version) < version_key(low):
            raise Refused(ua.StatusCodes.BadRequestNotAllowed,
                                f"version {h.version} is below the minimum version {low}")
        return image

    async def _write_slot(self, slot: str, data: bytes, image: FirmwareImage, user: str) -> None:
        """Flash the inactive slot at flash speed; the boot pointer is not touched (unless the defect)."""
        in_place = "update_power_loss_bricks" in self.defects
        if in_place:
            self.slots.record["pending_boot"] = slot
            self.slots.save()
        fd = self.slots.begin(slot, in_place=in_place)
        step = -(-len(data) // FLASH_STEPS)
        for i in range(0, len(data), step):
            self.slots.write(fd, data[i:i + step])
            await asyncio.sleep(step / FLASH_BYTES_PER_S)
        self.slots.record["pending_boot"] = None
        self.slots.record["state"] = "Installed"
        self.slots.commit(slot, fd, self._info(image), in_place=in_place)
        self.log("firmware_update", user, True, f"installed {image.version} into slot {slot.upper()}",
                 new=image.version)

    def _announce(self, data: bytes, user: str) -> None:
        """A transferred image that verifies and is newer than the running one: "new version available"."""
        try:
            image = verify_image(data, self.vendor_key)
        except ImageError:
            self.log("firmware_update", user, True, f"image received ({len(data)} bytes)")
            return
        self.log("firmware_update", user, True, f"image {image.version} received ({len(data)} bytes)",
                 new=image.version)
        if version_key(image.version) > version_key(self.running_version) and image.version != self.available_version:
            if "update_no_indication" not in self.defects:  # the defect: the indication node is never set
                self.slots.record["available"] = image.version
                self.slots.save()
            self.log("firmware_update", SYSTEM, True, f"new version available: {image.version}",
                     old=self.running_version, new=image.version)

    def _clear_available_if_reached(self) -> None:
        available = self.available_version
        if available and self.running_version != BRICKED_VERSION and \
                version_key(self.running_version) >= version_key(available):
            self.slots.record["available"] = ""
            self.slots.save()

    def _not_while_busy(self, what: str) -> None:
        if self.state in ("Installing", "Activating", "Confirming"):
            raise Refused(ua.StatusCodes.BadInvalidState, f"{what} not possible while {self.state}")

    def _set_state(self, state: str) -> None:
        self.slots.record["state"] = state
        self.slots.save()

    def _slot_version(self, slot: str, bootable_only: bool = False) -> str | None:
        info = self.slots.slot_info(slot)
        if not info or (bootable_only and not info.get("bootable", True)):
            return None
        return str(info["version"])

    @staticmethod
    def _info(image: FirmwareImage) -> dict[str, object]:
        return {"version": image.version, "health": image.header.health, "bootable": True}


def _without_user_steps(log: Log) -> Log:
    """Defect update_not_logged: the success path of a step a user commands has no audit call, so only what the
    device does by itself (user ``system``) and failures reach the log."""
    def log_some(kind: str, user: str, outcome: bool, message: str, old: object = None, new: object = None) -> None:
        if kind == "firmware_update" and outcome and user != SYSTEM:
            return
        log(kind, user, outcome, message, old=old, new=new)
    return log_some
