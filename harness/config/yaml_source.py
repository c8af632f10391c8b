"""YAML loading that remembers where every value came from.

pydantic reports an error as a path of keys (``duts -> meter1 -> transport -> tcp -> port``);
people need ``rigs/lab.yaml:14``. We compose the YAML node tree once, build plain data from it,
and keep the tree to turn any key path back into a line number.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.config.errors import ConfigError


class YamlSource:
    """Parsed YAML data plus the node tree to locate any key path in the file."""

    def __init__(self, path: Path, data: Any, root: yaml.Node | None) -> None:
        self.path = path
        self.data = data
        self._root = root

    @classmethod
    def load(cls, path: Path) -> YamlSource:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError.single(path, "file not found") from None
        except OSError as exc:
            raise ConfigError.single(path, f"cannot read: {exc.strerror}") from None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else None
            raise ConfigError.single(path, f"not valid YAML: {exc.problem}", line) from None
        return cls(path, data, root)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """1-based line of the deepest node the key path reaches (the parent if a key is missing)."""
        node = self._root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for key in loc:
            child = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if str(k.value) == str(key):
                        child = v
                        line = k.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                child = node.value[key]
                line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line
