"""OPC UA's standard address space (~6000 nodes), filled once and then read back from a cache file.

Every start of the simulated controller had asyncua fill the standard nodes from generated code: ~1.0 s CPU of a
~1.7 s start, paid again on each power cut and by each of the dozens of controllers the self-tests start. Where
``HARNESS_SIM_CACHE_DIR`` names a directory (the self-tests set it, under .pytest_cache), the filled nodes are
kept there as asyncua's own AddressSpace.dump/load keeps them (a pickle of its node table, taken right after the
fill, before any server-specific node exists) and loaded back in ~0.4 s. The file's name carries the Python and
asyncua versions and where asyncua is installed, so another stack never reads it; it is written whole or not at
all (temp + rename), and one that cannot be read is filled anew. Without the variable nothing changes.

Pickle runs code when it loads: the directory must be the user's own (as a bytecode cache is), never shared.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncua

CACHE_ENV = "HARNESS_SIM_CACHE_DIR"


def cache_path() -> Path | None:
    """Where this Python and asyncua keep their filled standard address space, if caching is asked for."""
    directory = os.environ.get(CACHE_ENV)
    if not directory:
        return None
    stack = f"{sys.version}|{version('asyncua')}|{Path(asyncua.__file__).resolve().parent}"
    return Path(directory) / f"opcua-standard-nodes-{hashlib.sha256(stack.encode()).hexdigest()[:16]}.pickle"


def load(path: Path) -> dict[Any, Any] | None:
    """The cached node table, or None when there is none (yet) or it cannot be read."""
    try:
        with path.open("rb") as f:
            nodes = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return None
    return nodes if isinstance(nodes, dict) and nodes else None


def store(path: Path, nodes: dict[Any, Any]) -> None:
    """Keep a freshly filled node table (nothing in it holds a method call yet); best effort."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            pickle.dump(nodes, f, pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        tmp.unlink(missing_ok=True)
