"""Profiles that extend another: ``extends: other.yaml`` and only what differs.

A model that is another one plus a little (the dual-interface EM4D, the concentrator that embeds
the EM4 meter) used to repeat its parent's whole profile, and the copies could drift apart. A
profile may now name its parent (a path relative to its own file) and state only what differs.
The merge is JSON Merge Patch (RFC 7386) applied from the root-most parent down: a mapping in the
child merges into the parent's mapping key by key; any other value (scalar, list) replaces the
parent's; ``null`` removes the parent's key (the field falls back to its default). Cycles are
refused. Every key remembers the file it was declared in, so an error in a merged profile still
names the file and line a person has to edit.

Relative paths inside a profile (documentation files) are resolved against the directory of the
profile that is loaded, the one that extends.

The evidence of a run keeps the profile *as used*: for a profile that extends another, that is the
resolved profile (``evidence_bytes``: one self-contained YAML file whose header names every file of
the chain with its SHA-256), and the certificate's ``profile_sha256`` is the hash of those bytes — so
a changed parent changes the identity of every DUT that extends it. A profile that extends nothing
is kept byte for byte, as before.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.config.errors import ConfigError
from harness.config.yaml_source import YamlSource

EXTENDS = "extends"


def merge_patch(base: Any, patch: Any) -> Any:
    """RFC 7386: ``patch`` applied to ``base`` (neither is changed)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _child(node: Any, key: str | int) -> tuple[bool, Any]:
    """(found, value) of ``key`` in a mapping (keys compared as text, as line_of does) or a list."""
    if isinstance(node, dict):
        if key in node:  # the common case at dict speed: locating every error stays linear in the file
            return True, node[key]
        for k, v in node.items():  # a key YAML gave as a number or a boolean
            if not isinstance(k, str) and str(k) == str(key):
                return True, v
    elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return True, node[key]
    return False, None


@dataclass
class ProfileSource:
    """A profile with its ``extends:`` chain resolved: the merged data and the files it came from.

    Has the ``path`` / ``data`` / ``line_of`` of a ``YamlSource`` (``path`` is the profile that was
    named), and ``locate`` for the file and line of any key path."""

    path: Path
    data: Any
    layers: list[YamlSource]  # the named profile first, then its parent, the parent's parent …

    @property
    def extends(self) -> bool:
        return len(self.layers) > 1

    def locate(self, loc: Sequence[str | int]) -> tuple[Path, int | None]:
        """File and line where the value at ``loc`` of the merged data was declared.

        Walks the key path through every layer that contributes to it: a key's value comes from the
        nearest layer declaring it; a mapping there merges with the same key's mappings further up,
        a scalar or list (or a null) hides them."""
        owners = [(layer, layer.data) for layer in self.layers]
        where = self.layers[0]
        for key in loc:
            found = []
            for layer, node in owners:
                has, value = _child(node, key)
                if not has:
                    continue
                if value is None:
                    break
                found.append((layer, value))
                if not isinstance(value, dict):
                    break
            if not found:
                break
            owners, where = found, found[0][0]
        return where.path, where.line_of(loc)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        return self.locate(loc)[1]

    def evidence_bytes(self) -> bytes:
        """The profile as used: the file itself, or for a chain the resolved profile with its origins."""
        if not self.extends:
            return self.path.read_bytes()
        # Paths relative to the named profile, so the bytes (and the DUT's profile hash) do not depend on
        # where the files are checked out.
        home = self.path.resolve().parent
        header = ["# Resolved profile (`extends:` merged) as the harness used it, from these files:"]
        header += [f"#   {os.path.relpath(layer.path.resolve(), home)}  "
                   f"sha256 {hashlib.sha256(layer.path.read_bytes()).hexdigest()}" for layer in self.layers]
        body = yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True, width=120)
        return ("\n".join(header) + "\n" + body).encode("utf-8")

    def sha256(self) -> str:
        return hashlib.sha256(self.evidence_bytes()).hexdigest()


def resolve_profile(path: Path, first: YamlSource | None = None) -> ProfileSource:
    """Load ``path`` and every profile it extends, and merge them (``first``: ``path`` already loaded)."""
    layers = [first or YamlSource.load(path)]
    while isinstance(layers[-1].data, dict) and EXTENDS in layers[-1].data:
        layer = layers[-1]
        line = layer.line_of([EXTENDS])
        target = layer.data[EXTENDS]
        if not isinstance(target, str) or not target.strip():
            raise ConfigError.single(layer.path, "expected the path of the profile this one extends, relative "
                                     "to this file", line, EXTENDS)
        parent = (layer.path.parent / target).resolve()
        chain = [src.path.resolve() for src in layers]
        if parent in chain:
            cycle = " -> ".join(p.name for p in [*chain[chain.index(parent):], parent])
            raise ConfigError.single(layer.path, f"profiles extend each other in a cycle: {cycle}", line, EXTENDS)
        if not parent.is_file():
            raise ConfigError.single(layer.path, f"the profile it extends, {parent}, is not found", line, EXTENDS)
        source = YamlSource.load(parent)
        if not isinstance(source.data, dict):
            raise ConfigError.single(parent, "expected a mapping at the top (a profile)", 1)
        layers.append(source)
    data = layers[-1].data
    for layer in reversed(layers[:-1]):
        data = merge_patch(data, {k: v for k, v in layer.data.items() if k != EXTENDS})
    return ProfileSource(layers[0].path, data, layers)
