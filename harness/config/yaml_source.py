"""YAML loading that remembers where every value came from, and survives any input.

pydantic reports an error as a path of keys (``duts -> meter1 -> transport -> tcp -> port``);
people need ``rigs/lab.yaml:14``. We compose the YAML node tree once, construct plain data from
that same tree, and keep it to turn any key path back into a line number — through an index per
mapping built on first use, so locating every error of a file is linear in its size (a file of
40,000 typos took 75 s when each lookup scanned its mapping).

A rig or profile comes from outside, so whatever it holds ends in a ``ConfigError`` with a line
and never in a traceback or a hang: a FIFO or device instead of a file, more than
``MAX_CONFIG_BYTES``, bytes that are not UTF-8, control characters, a key given twice (both lines
named — YAML would let the last one win silently), nesting deeper than the parser recurses, an
integer past Python's digit limit, a date that is no date, a NUL character in a string (an escape
``"\\0"``: no path, argument or environment variable can hold one), aliases that expand beyond
``MAX_EXPANDED_VALUES`` values (a "billion laughs") or into themselves.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.config.errors import ConfigError, show_value
from harness.config.safe_files import read_regular_file

MAX_CONFIG_BYTES = 4 * 1024 * 1024  # profiles and rigs are a few kB (500x room); 4 MiB of typos load in ~6 s
MAX_EXPANDED_VALUES = 1_000_000  # values the data holds once aliases are expanded (pydantic walks each)


# libyaml parses ~10x faster than PyYAML's Python scanner and bounds nesting itself (1000 levels); the
# constructor (Python) is the same either way.
_C = hasattr(yaml, "CSafeLoader")
_Base: type = yaml.CSafeLoader if _C else yaml.SafeLoader


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """SafeLoader that refuses duplicate keys and turns a value Python cannot build into a marked error."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            value = super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:  # int digit limit, 2026-13-45, …
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {show_value(node.value) if isinstance(node, yaml.ScalarNode) else 'this'}"
                f" ({exc})", node.start_mark) from None
        if isinstance(value, str) and "\0" in value:  # only "\0" escapes get here; paths and argv cannot hold one
            raise yaml.constructor.ConstructorError(None, None, f"a NUL character in {show_value(value)}",
                                                    node.start_mark)
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Hashable, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            first = seen.setdefault(key, key_node) if isinstance(key, Hashable) else key_node
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {show_value(key)} (first at line {first.start_mark.line + 1}); "
                    "give each key once", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(data: Any, path: Path) -> int:
    """How many values ``data`` holds with every alias expanded; refuses a cycle or more than the maximum.

    Iterative and memoised by identity, so shared subtrees are counted by multiplication, not walked.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        item, done = stack.pop()
        if not isinstance(item, dict | list):
            continue
        ident = id(item)
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        if done:
            on_path.discard(ident)
            total = 1 + sum(sizes.get(id(c), 1) for c in children)
            if total > MAX_EXPANDED_VALUES:
                raise ConfigError.single(path, f"aliases expand to more than {MAX_EXPANDED_VALUES:,} values")
            sizes[ident] = total
            continue
        if ident in sizes:
            continue
        if ident in on_path:
            raise ConfigError.single(path, "an alias refers to a value that contains it (a cycle)")
        on_path.add(ident)
        stack.append((item, True))
        stack.extend((c, False) for c in children if isinstance(c, dict | list) and id(c) not in sizes)
    return sizes.get(id(data), 1)


def _line_at(text: str | bytes, offset: int) -> int:
    return text.count(b"\n" if isinstance(text, bytes) else "\n", 0, offset) + 1


class YamlSource:
    """Parsed YAML data plus the node tree to locate any key path in the file."""

    def __init__(self, path: Path, data: Any, root: yaml.Node | None) -> None:
        self.path = path
        self.data = data
        self._root = root
        self._index: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}

    @classmethod
    def load(cls, path: Path) -> YamlSource:
        try:
            raw = read_regular_file(path, MAX_CONFIG_BYTES)
        except FileNotFoundError:
            raise ConfigError.single(path, "file not found") from None
        except OSError as exc:
            raise ConfigError.single(path, f"cannot read: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError.single(path, f"not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start}); "
                                     "save the file as UTF-8", _line_at(raw, exc.start)) from None
        root, data = cls._parse(path, raw if _C else text)
        _expanded_size(data, path)
        return cls(path, data, root)

    @staticmethod
    def _parse(path: Path, text: str | bytes) -> tuple[yaml.Node | None, Any]:
        """Node tree and data of ``text`` (UTF-8 bytes for libyaml, whose error offsets count bytes)."""
        loader = None
        try:
            loader = _Loader(text)
            root = loader.get_single_node()
            return root, (None if root is None else loader.construct_document(root))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "unreadable"
            raise ConfigError.single(path, f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
        except yaml.reader.ReaderError as exc:  # a character YAML does not allow (control characters)
            raise ConfigError.single(path, f"not valid YAML: character {exc.character!r} is not allowed "
                                     "(a control character?)", _line_at(text, exc.position)) from None
        except yaml.YAMLError as exc:
            raise ConfigError.single(path, f"not valid YAML: {exc}") from None
        except RecursionError:
            raise ConfigError.single(path, "not valid YAML for the harness: nested too deeply") from None
        finally:
            if loader is not None and hasattr(loader, "dispose"):
                loader.dispose()

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """1-based line of the deepest node the key path reaches (the parent if a key is missing)."""
        node = self._root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for key in loc:
            child = None
            if isinstance(node, yaml.MappingNode):
                found = self._keys_of(node).get(str(key))
                if found is not None:
                    key_node, child = found
                    line = key_node.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
                child = node.value[key]
                line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line

    def _keys_of(self, node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The mapping's keys as text, indexed once per node; the last occurrence wins, as in the data (keys
        are unique, but a merge ``<<: *base`` puts the base's pairs before the mapping's own)."""
        index = self._index.get(id(node))
        if index is None:
            index = {str(k.value): (k, v) for k, v in node.value}
            self._index[id(node)] = index
        return index
