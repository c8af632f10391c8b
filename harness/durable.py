"""Files that must survive a SIGKILL (a power cut) whole: either the old content or the new, never a mix.

Write to a temporary file beside the target, fsync it, rename it over the target, fsync the
directory (the rename itself must be durable). Simulated NVM, journals, buffers and firmware slots
use it, and so do the harness's own keys and certificates.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # a stale .tmp left by a crash keeps its old mode through O_CREAT: a key must not
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make the renames and creations in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
