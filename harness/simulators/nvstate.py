"""Non-volatile memory of a simulated device: one JSON file, written atomically and fsynced.

A SIGKILL can land at any instruction; write-to-temp, fsync, rename, fsync-directory means the
file on disk is always either the old state or the new one, never a torn mix — which is what a
real meter's NVM with a power-fail capacitor guarantees.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class NvStore:
    """The device's non-volatile memory."""

    FILE = "nvm.json"

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / self.FILE
        self.writes = 0

    def load(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        data = json.dumps(state, sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self.writes += 1
