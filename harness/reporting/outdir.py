"""Where a run's evidence goes when the user does not say: harness-out/<UTC time>-<rig>/."""

from __future__ import annotations

import time
from pathlib import Path


def default_out(rig_name: str) -> Path:
    return Path("harness-out") / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{rig_name}"
