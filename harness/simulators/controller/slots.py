"""A/B firmware slots and the boot record, as a bootloader keeps them in flash.

Two slot files (``slots/a.img``, ``slots/b.img``) and a boot record (``slots/boot.json``: which
slot is active, whether it runs on trial, what each slot holds, the update state). The rule that
makes a power cut harmless at any point: a slot is written to ``<slot>.img.part`` and renamed into
place only when complete and fsynced, the boot record marks the slot invalid before and valid
after, and the active-slot pointer is written last — so the record always names a complete,
verified image. ``in_place=True`` (defect update_power_loss_bricks) writes straight into the slot
file instead.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from harness.durable import fsync_dir
from harness.simulators.nvstate import NvStore

SLOTS = ("a", "b")


class BootRecord(NvStore):
    FILE = "boot.json"


def other(slot: str) -> str:
    return "b" if slot == "a" else "a"


class SlotStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "slots"
        self.boot = BootRecord(self.dir)
        self.record: dict[str, Any] = self.boot.load() or {}

    @property
    def fresh(self) -> bool:
        return not self.record

    def save(self) -> None:
        self.boot.save(self.record)

    def path(self, slot: str) -> Path:
        return self.dir / f"{slot}.img"

    def read(self, slot: str) -> bytes | None:
        try:
            return self.path(slot).read_bytes()
        except FileNotFoundError:
            return None

    def slot_info(self, slot: str) -> dict[str, Any] | None:
        return self.record.get("slots", {}).get(slot)

    def set_slot_info(self, slot: str, info: dict[str, Any] | None) -> None:
        self.record.setdefault("slots", {})[slot] = info

    def discard_partial(self) -> list[str]:
        """Half-written slot files an interrupted install left; the slots they belonged to."""
        found = []
        for slot in SLOTS:
            part = self.dir / f"{slot}.img.part"
            if part.exists():
                part.unlink()
                found.append(slot)
        return found

    # ---- writing a slot ------------------------------------------------------------------------
    def begin(self, slot: str, in_place: bool = False) -> int:
        """Open ``slot`` for writing; its old content is invalid from now on (recorded first)."""
        self.set_slot_info(slot, None)
        self.save()
        target = self.path(slot) if in_place else self.dir / f"{slot}.img.part"
        if not in_place:
            with contextlib.suppress(FileNotFoundError):
                self.path(slot).unlink()
        return os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    @staticmethod
    def write(fd: int, data: bytes) -> None:
        os.write(fd, data)

    def commit(self, slot: str, fd: int, info: dict[str, Any], in_place: bool = False) -> None:
        """The slot is complete: fsync, rename into place, then record it as valid."""
        os.fsync(fd)
        os.close(fd)
        if not in_place:
            os.replace(self.dir / f"{slot}.img.part", self.path(slot))
        fsync_dir(self.dir)
        self.set_slot_info(slot, info)
        self.save()

    def install_factory(self, slot: str, image: bytes, info: dict[str, Any]) -> None:
        """The image the device left the factory with."""
        fd = self.begin(slot)
        self.write(fd, image)
        self.commit(slot, fd, info)
