"""Configuration errors written for people: file, line, field, what was expected.

A rig or profile may be hostile or careless — a 50 MB string where a number belongs, a key of a
million characters, forty thousand typos —, so what is printed is bounded: each value and field
at most ``MAX_VALUE_CHARS`` (cut in the middle, with a marker saying how much), each message at
most a few of them, and at most ``MAX_SHOWN_PROBLEMS`` problems (the rest counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_VALUE_CHARS = 300  # of one offending value or field name, as printed
MAX_MESSAGE_CHARS = 4 * MAX_VALUE_CHARS
MAX_SHOWN_PROBLEMS = 50


def shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` if short enough, else its head and tail around a marker naming what was cut."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 20)
    head, tail = text[: keep * 2 // 3], text[len(text) - keep // 3:]
    return f"{head}…[{len(text) - len(head) - len(tail):,} characters cut]…{tail}"


def show_value(value: Any) -> str:
    """repr of an offending value, bounded (a huge string is cut before repr copies it)."""
    if isinstance(value, str | bytes) and len(value) > MAX_VALUE_CHARS:
        return shorten(repr(value[: MAX_VALUE_CHARS]) + f"…[{len(value) - MAX_VALUE_CHARS:,} characters cut]",
                       MAX_VALUE_CHARS + 40)
    return shorten(repr(value))


@dataclass
class ConfigProblem:
    """One thing wrong in one file."""

    path: Path
    line: int | None
    field: str
    message: str

    def __post_init__(self) -> None:
        self.field = shorten(self.field)
        self.message = shorten(self.message, MAX_MESSAGE_CHARS)

    def __str__(self) -> str:
        where = shorten(str(self.path)) + (f":{self.line}" if self.line else "")
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass
class ConfigError(Exception):
    """Raised for any invalid profile or rig; the CLI prints it and exits 2, never a traceback."""

    problems: list[ConfigProblem] = field(default_factory=list)

    def __str__(self) -> str:
        shown = [str(p) for p in self.problems[:MAX_SHOWN_PROBLEMS]]
        if len(self.problems) > MAX_SHOWN_PROBLEMS:
            shown.append(f"… and {len(self.problems) - MAX_SHOWN_PROBLEMS:,} more problems (fix these first)")
        return "\n".join(shown)

    @classmethod
    def single(cls, path: Path, message: str, line: int | None = None, field_: str = "") -> ConfigError:
        return cls([ConfigProblem(path, line, field_, message)])
