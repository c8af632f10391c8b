"""Non-volatile memory of a simulated device: one JSON file, written atomically and fsynced.

A SIGKILL can land at any instruction; write-to-temp, fsync, rename, fsync-directory means the
file on disk is always either the old state or the new one, never a torn mix — which is what a
real meter's NVM with a power-fail capacitor guarantees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.durable import write_atomically


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
        write_atomically(self.path, json.dumps(state, sort_keys=True).encode())
        self.writes += 1
