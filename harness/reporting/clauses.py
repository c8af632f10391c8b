"""The clauses of the Rules the harness certifies against: chapter, kind, suites, an English gist and the
Russian wording.

The certificate's clause matrix lists every clause of chapters 9-15 (the requirements on equipment) and the
clauses elsewhere that the suites give evidence for, each with an honest kind -- measured by the harness,
judged on declared documents, both, or out of the harness's scope -- so that no clause is silently left out
and none is passed by default. The Russian text is authoritative and reports quote it verbatim, so the
catalogue is data, not code: ``rules.yaml`` beside this module (shipped in the wheel), whose Russian text
``tools/extract_rules.py`` refreshes from the official text of the Rules, which CI does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

KINDS = ("automatic", "documentary", "automatic+documentary", "out of scope")
SUITES = ("registers", "tariffs", "nvm", "clock", "journal", "interval_data", "failover", "buffering", "update",
          "access_control", "robustness", "protocol", "availability", "amr", "documentation")


@dataclass(frozen=True)
class Clause:
    number: str
    chapter: int
    gist: str
    text_ru: str = ""
    kind: str = "automatic"
    suites: tuple[str, ...] = ()
    note: str = ""  # why the kind/suites are what they are, where REQUIREMENTS.md does not say it alone


def clause_sort_key(number: str) -> tuple[int, ...]:
    """The Rules' order: ``8.1`` < ``16`` < ``38`` < ``38.2`` < ``39``. ValueError for a non-numeric clause."""
    return tuple(int(part) for part in number.split("."))


# Chapter -> its points, for clauses not in the catalogue (e.g. a sub-item ``95.1`` of a catalogued point).
_CHAPTERS = [(9, 49, 51), (10, 52, 57), (11, 58, 62), (12, 63, 72), (13, 73, 79), (14, 80, 86), (15, 87, 97)]


def _load() -> tuple[dict[str, Clause], dict[int, str], dict[int, str]]:
    """The catalogue from rules.yaml, checked so that a bad edit fails at import, not in a certificate."""
    # libyaml when present: the catalogue is read in every certify process (~10x faster than PyYAML's
    # Python scanner, same data; it is shipped, trusted text, so no line-level error reporting is needed).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw: dict[str, Any] = yaml.load(
        resources.files("harness.reporting").joinpath("rules.yaml").read_text(encoding="utf-8"), Loader=loader)
    titles = {int(n): str(ch["title"]) for n, ch in raw["chapters"].items()}
    titles_ru = {int(n): str(ch["title_ru"]) for n, ch in raw["chapters"].items()}
    clauses: dict[str, Clause] = {}
    for row in raw["clauses"]:
        number = row["number"]
        if not isinstance(number, str):
            raise ValueError(f"rules.yaml: clause number {number!r} must be a quoted string")
        clause_sort_key(number)
        if number in clauses:
            raise ValueError(f"rules.yaml: clause {number} listed twice")
        clause = Clause(number=number, chapter=int(row["chapter"]), gist=str(row["gist"]),
                        text_ru=str(row.get("text_ru", "")), kind=str(row["kind"]),
                        suites=tuple(row.get("suites") or ()), note=str(row.get("note", "")))
        if clause.kind not in KINDS:
            raise ValueError(f"rules.yaml: clause {number}: kind {clause.kind!r} is not one of {KINDS}")
        if unknown := set(clause.suites) - set(SUITES):
            raise ValueError(f"rules.yaml: clause {number}: unknown suites {sorted(unknown)}")
        if clause.chapter not in titles:
            raise ValueError(f"rules.yaml: clause {number}: chapter {clause.chapter} has no title")
        clauses[number] = clause
    ordered = dict(sorted(clauses.items(), key=lambda item: clause_sort_key(item[0])))
    return ordered, titles, titles_ru


CLAUSES, CHAPTER_TITLES, CHAPTER_TITLES_RU = _load()


def chapter_of(clause: str) -> int | None:
    """The chapter of ``clause``: the catalogue's, else that of the point it is a sub-item of (``34.1``), else
    by the point ranges of chapters 9-15; None if unknown."""
    head = clause.split(".")[0]
    for key in (clause, head):
        if key in CLAUSES:
            return CLAUSES[key].chapter
    try:
        n = int(head)
    except ValueError:
        return None
    return next((ch for ch, lo, hi in _CHAPTERS if lo <= n <= hi), None)


def clause_of_check(check_id: str) -> str:
    """``KZ-95-03`` -> ``95``."""
    parts = check_id.split("-")
    if len(parts) != 3 or parts[0] != "KZ":
        raise ValueError(f"check id {check_id!r} is not of the form KZ-<clause>-<nn>")
    return parts[1]
