"""Reading the files a rig or profile names without trusting them: regular files only, bounded in size,
and — for evidence a YAML file declares — inside that file's folder.

A YAML file is written by a vendor or a lab, and a careless or hostile one can point anywhere: at
``/etc/passwd`` (which would then "be" the operating manual), at ``/dev/zero`` (read until memory runs
out) or at a FIFO (whose open blocks for ever). Every read here stats the path first and opens nothing
but a regular file (non-blocking, so a FIFO swapped in between never blocks), and stops past a limit.
Refusals are ``OSError``s with a ``strerror`` written for people, so callers keep one ``except OSError``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024  # a declared document (manual, description): PDFs of a few MB are usual
_CHUNK = 1024 * 1024

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def not_regular(path: Path) -> str | None:
    """Why ``path`` (followed through symlinks) is no regular file, or None when it is one or does not exist."""
    try:
        mode = path.stat().st_mode
    except (OSError, RuntimeError):  # missing, or a symlink loop: reported when it is read
        return None
    return None if stat.S_ISREG(mode) else f"not a regular file ({file_kind(mode)})"


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, refused unless it is a regular file of at most ``limit`` bytes."""
    why = not_regular(path)
    if why is not None:
        raise OSError(errno.EINVAL, why)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode  # the file opened, not the one stat'ed: a swap in between is caught here
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file ({file_kind(mode)})")
        chunks, total = [], 0
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise OSError(errno.EFBIG, f"larger than {limit:,} bytes, the most the harness reads")
        return b"".join(chunks)
    finally:
        os.close(fd)


def inside(base: Path, written: str) -> Path:
    """``written`` (relative to ``base`` or absolute), symlinks resolved; ValueError unless it lies in ``base``."""
    try:
        resolved = (base / written).resolve()  # an absolute ``written`` replaces base
        root = base.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ValueError(f"{written}: cannot be resolved ({exc})") from None
    if not resolved.is_relative_to(root):
        raise ValueError(f"{written} resolves to {resolved}: a declared file must lie inside the folder of the "
                         f"file that declares it ({root})")
    return resolved


def read_inside(base: Path, written: str, limit: int | None = None) -> bytes:
    """The bytes of a file a YAML file declares, checked again at read time (it may have changed since loading)."""
    try:
        path = inside(base, written)
    except ValueError as exc:
        raise OSError(errno.EACCES, f"refused, outside the folder of its YAML file: {exc}") from None
    return read_regular_file(path, MAX_DOCUMENT_BYTES if limit is None else limit)
