"""A job: the rig and every file it names, with their SHA-256, so any bench host runs exactly what was submitted.

The files keep their places relative to one another (a rig in ``rigs/`` naming ``../device_profiles/x.yaml``
which names ``docs/manual.md``): they are shipped relative to their common folder and unpacked under the
job's folder on the worker, where the rig's relative paths find them again. Each file's SHA-256 is checked
on unpacking; a changed byte stops the job before anything runs.
"""

from __future__ import annotations

import base64
import hashlib
import os
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.config.documentation import DocumentRef
from harness.config.loading import LoadedRig
from harness.config.rig_security import FirmwareImages, _from_rig_dir
from harness.config.safe_files import MAX_DOCUMENT_BYTES, read_regular_file

SIMULATED_QUEUE = "simulated"  # rigs whose DUTs are all launched simulators: any host may run them


def bench_queue(bench: str) -> str:
    return f"bench.{bench}"


class JobError(Exception):
    """The job cannot be built or unpacked as submitted (a missing or changed file)."""


def _is_rig_path(annotation: Any) -> bool:
    """Whether a field is (optionally) a ``RigPath``: a file the rig names, relative to the rig file."""
    if any(getattr(meta, "func", None) is _from_rig_dir for meta in getattr(annotation, "__metadata__", ())):
        return True
    return any(_is_rig_path(arg) for arg in typing.get_args(annotation))


def _named_in(model: Any) -> Iterator[Path]:
    """Every file a validated rig or profile names: documents, keys and certificates, firmware images."""
    if isinstance(model, DocumentRef):
        yield model.path
    elif isinstance(model, FirmwareImages):
        for which in ("current", "next", "below_min", "unhealthy"):
            written = getattr(model, which)
            if written is not None and "{" not in written:  # {state_dir}: the simulator's own images
                yield model.resolve(written)
    if isinstance(model, BaseModel):
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            if isinstance(value, str) and _is_rig_path(field.annotation):
                yield Path(value)
            else:
                yield from _named_in(value)
    elif isinstance(model, dict):
        for value in model.values():
            yield from _named_in(value)
    elif isinstance(model, list | tuple):
        for value in model:
            yield from _named_in(value)


def rig_files(loaded: LoadedRig) -> list[Path]:
    """The rig file, each profile with the profiles it extends, and every file any of them names that exists."""
    files = [loaded.path]
    for source in loaded.profile_sources.values():
        files += [layer.path.resolve() for layer in source.layers]
    files += [p.resolve() for p in _named_in(loaded.rig) if p.is_file()]
    for profile in loaded.profiles.values():
        files += [p.resolve() for p in _named_in(profile) if p.is_file()]
    return sorted(set(files))


def pack(loaded: LoadedRig) -> dict[str, Any]:
    """The rig's files as shipped: {"rig": relative path, "files": {relative path: {sha256, data (base64)}}}."""
    files = rig_files(loaded)
    root = Path(os.path.commonpath([p.parent for p in files]))
    shipped: dict[str, dict[str, str]] = {}
    for path in files:
        try:
            data = read_regular_file(path, MAX_DOCUMENT_BYTES)
        except OSError as exc:
            raise JobError(f"{path}: {exc.strerror or exc}") from None
        shipped[path.relative_to(root).as_posix()] = {"sha256": hashlib.sha256(data).hexdigest(),
                                                      "data": base64.b64encode(data).decode("ascii")}
    config = {"rig": loaded.path.relative_to(root).as_posix(), "files": shipped}
    _check_self_contained(loaded, config)
    return config


def _check_self_contained(loaded: LoadedRig, config: dict[str, Any]) -> None:
    """Unpacked elsewhere, the rig must find every file in the job: a path written absolute would make the bench
    host read its own copy of that file, not the one submitted."""
    import tempfile

    from harness.config import ConfigError, load_rig

    with tempfile.TemporaryDirectory(prefix="harness-job-") as tmp:
        home = Path(tmp).resolve()
        try:
            elsewhere = load_rig(unpack(config, home))
        except ConfigError as exc:
            raise JobError(f"the rig does not load away from its folder: {exc}") from None
        outside = [p for p in rig_files(elsewhere) if not p.is_relative_to(home)]
    if outside:
        raise JobError(f"{loaded.path} names {outside[0]} by an absolute path: a bench host would read its own copy, "
                       "not the one submitted; write it relative to the file that names it")


def unpack(config: dict[str, Any], dest: Path) -> Path:
    """Write the shipped files under ``dest`` after checking each one's SHA-256; the rig's path there."""
    if config.get("rig") not in config.get("files", {}):
        raise JobError(f"the rig {config.get('rig')!r} is not among the shipped files")
    for rel, entry in config["files"].items():
        target = (dest / rel).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise JobError(f"{rel}: a shipped file must stay inside the job's folder")
        data = base64.b64decode(entry["data"])
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise JobError(f"{rel}: SHA-256 {digest} is not the submitted {entry['sha256']}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return dest / config["rig"]


def all_simulated(loaded: LoadedRig) -> bool:
    """Every DUT is a launched simulator: the rig needs no bench's equipment."""
    return all(dut.launch is not None for dut in loaded.rig.duts.values())
