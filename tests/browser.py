"""Headless Chromium for the report tests: a real browser renders what a lab hands over.

Chromium is a test dependency (`./setup.sh` and `.ci/run` install Debian's package): a missing
browser fails loudly, never skips. Each call runs in its own process group with a fresh profile and
is killed by that group's PID on timeout (Chromium forks zygote and renderer children that a plain
kill of the parent would orphan). The flags keep it from reaching for the closed network.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found is None:
        pytest.fail("chromium is missing: the report tests need a real browser; ./setup.sh (as root) or "
                    "`apt-get install chromium` installs Debian's")
    return found


def chromium(tmp: Path, *args: str, timeout: float = 90) -> str:
    """Run Chromium once with ``args`` (e.g. ``--dump-dom URL``); its stdout."""
    profile = tmp / f"chromium-profile-{time.monotonic_ns()}"
    proc = subprocess.Popen([chromium_path(), *FLAGS, f"--user-data-dir={profile}", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {timeout} s: {' '.join(args)}")
    finally:
        with contextlib.suppress(ProcessLookupError):  # helpers the browser left behind: its group, by PID
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
    return out.decode("utf-8", errors="replace")


def dump_dom(page: Path, tmp: Path, *, virtual_time_ms: int = 0) -> str:
    """The DOM after the page (and its scripts, within the virtual time budget) ran."""
    budget = [f"--virtual-time-budget={virtual_time_ms}"] if virtual_time_ms else []
    return chromium(tmp, *budget, "--dump-dom", page.resolve().as_uri())
