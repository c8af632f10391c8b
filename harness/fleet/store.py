"""Result stores: where a worker puts a job's sealed run, and where `harness fleet fetch` finds it.

Exactly one result per job: a store refuses to replace a result it already holds (a job delivered twice
after a crash finds its result there and does not run again). The built-in store is a folder, usually a
shared mount; others come from plugins (``harness_add_result_stores``) and are named ``SCHEME://…``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

_JOB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class StoreError(Exception):
    """The store cannot be used (not writable, unknown scheme); the message is for people."""


class ResultStore(Protocol):
    location: str

    def check_writable(self) -> None: ...
    def put(self, job: str, archive: Path, meta: dict[str, Any]) -> bool: ...
    def get(self, job: str, dest: Path) -> Path | None: ...
    def meta(self, job: str) -> dict[str, Any] | None: ...


def _job_name(job: str) -> str:
    if not _JOB_ID.match(job):
        raise StoreError(f"{job!r} is not a job id")
    return job


class DirectoryStore:
    """``DIR/JOB.tar.gz`` (the `harness bundle` archive) and ``DIR/JOB.json`` (verdict, bench, SHA-256)."""

    def __init__(self, location: str) -> None:
        self.root = Path(location.removeprefix("dir://")).expanduser()
        self.location = str(self.root.resolve())

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise StoreError(f"result store {self.root} is not writable: {exc.strerror or exc}") from None

    def put(self, job: str, archive: Path, meta: dict[str, Any]) -> bool:
        """Keep the result; False when the store already holds one for ``job`` (it is left as it was)."""
        name = _job_name(job)
        dest = self.root / f"{name}.tar.gz"
        tmp = self.root / f".{name}.tar.gz.{os.getpid()}.tmp"
        tmp.write_bytes(archive.read_bytes())
        try:
            os.link(tmp, dest)  # atomic and never replaces: the first result stays the only one
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        meta_tmp = self.root / f".{name}.json.tmp"
        meta_tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        meta_tmp.replace(self.root / f"{name}.json")
        return True

    def get(self, job: str, dest: Path) -> Path | None:
        src = self.root / f"{_job_name(job)}.tar.gz"
        if not src.is_file():
            return None
        dest.write_bytes(src.read_bytes())
        return dest

    def meta(self, job: str) -> dict[str, Any] | None:
        path = self.root / f"{_job_name(job)}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def open_store(location: str) -> ResultStore:
    """``DIR`` or ``dir://DIR``, or ``SCHEME://…`` of a store a plugin provides."""
    from harness import registry

    scheme = location.split("://", 1)[0] if "://" in location else "dir"
    specs = registry.result_stores()
    if scheme not in specs:
        raise StoreError(f"no result store for {scheme}://; stores: {', '.join(s + '://' for s in specs)}")
    return specs[scheme].factory(location)
