"""Configuration errors written for people: file, line, field, what was expected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ConfigProblem:
    """One thing wrong in one file."""

    path: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else f"{self.path}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass
class ConfigError(Exception):
    """Raised for any invalid profile or rig; the CLI prints it and exits 2, never a traceback."""

    problems: list[ConfigProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    @classmethod
    def single(cls, path: Path, message: str, line: int | None = None, field_: str = "") -> ConfigError:
        return cls([ConfigProblem(path, line, field_, message)])
