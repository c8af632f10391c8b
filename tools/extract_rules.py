#!/usr/bin/env python3
"""Refresh the Russian wording in harness/reporting/rules.yaml from the official text of the Rules.

Why a script and committed data: the Russian text is authoritative and every report quotes it verbatim,
but the official text (the "seed") is not in the repository and CI never sees it. So the catalogue is
committed (rules.yaml) and this script re-derives from the seed what the seed alone decides -- each
clause's Russian wording and chapter, and the Russian chapter titles -- while keeping everything written
by hand (English gist, kind, suites, note, English chapter titles). Run it again whenever the Rules are
amended; ``--check`` changes nothing and exits 1 if rules.yaml has drifted from the seed.

The seed is plain text: the order's own preamble (with its own points 1-4), then the Rules, chapters as
lines ``Глава N. title``, each point a line ``NN. text`` and its sub-items lines ``1) text``, all indented
with (non-breaking) spaces. A clause ``8.1`` is sub-item 1) of point 8.

Usage: python tools/extract_rules.py SEED [--rules RULES_YAML] [--check]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "harness" / "reporting" / "rules.yaml"
CERTIFIED_CHAPTERS = range(9, 16)  # every point of these chapters is in the catalogue

_CHAPTER = re.compile(r"^Глава (\d+)\.\s+(.+)$")
_POINT = re.compile(r"^(\d+)\.\s")

HEADER = """\
# The clause catalogue of the certificate's clause matrix: every clause (point) of chapters 9-15 of the Rules
# and the clauses outside them that the suites give evidence for, in the Rules' order.
#
# Hand-written here: gist (English), kind (automatic | documentary | automatic+documentary | out of scope),
# suites, note, and the chapters' English titles. kind/gist/suites follow /work/shared/REQUIREMENTS.md where
# it lists the clause; a note says where they do not.
# From the seed (the Russian original), refreshed by `python tools/extract_rules.py SEED`: text_ru (verbatim,
# sub-items joined with newlines), chapter, and the chapters' title_ru. Do not edit those by hand;
# `tools/extract_rules.py SEED --check` tells whether they still match the seed.
"""


@dataclass
class Point:
    number: int
    chapter: int
    lines: list[str] = field(default_factory=list)


@dataclass
class Seed:
    chapters: dict[int, str]
    points: dict[int, Point]

    def text(self, number: str) -> str:
        """The Russian text of clause ``number``: the whole point with its sub-items, or, for ``8.1``, sub-item
        1) of point 8. The clause's own number (``95.``, ``1)``) is not part of it: reports print it apart."""
        head, _, sub = number.partition(".")
        point = self.points.get(int(head))
        if point is None:
            raise KeyError(f"point {head} is not in the seed")
        if not sub:
            return "\n".join([point.lines[0].removeprefix(f"{head}. "), *point.lines[1:]])
        found = [line for line in point.lines[1:] if line.startswith(f"{sub}) ")]
        if len(found) != 1:
            raise KeyError(f"point {head} has {len(found)} sub-items {sub}) in the seed, expected one")
        return found[0].removeprefix(f"{sub}) ")

    def chapter(self, number: str) -> int:
        return self.points[int(number.partition(".")[0])].chapter


def parse_seed(text: str) -> Seed:
    """Chapters and points of the Rules. Everything before the first chapter heading is the order that
    approves the Rules (its points 1-4 are not the Rules' points) and is skipped."""
    chapters: dict[int, str] = {}
    points: dict[int, Point] = {}
    current: Point | None = None
    for raw in text.splitlines():
        line = raw.strip()  # str.strip() also removes the non-breaking spaces of the indentation
        if not line:
            continue
        if m := _CHAPTER.match(line):
            n = int(m.group(1))
            if n != len(chapters) + 1:
                raise ValueError(f"chapter {n} follows chapter {len(chapters)}: {line[:60]!r}")
            chapters[n] = m.group(2).strip()
            current = None
            continue
        if not chapters:
            continue  # the order's preamble
        if m := _POINT.match(line):
            n = int(m.group(1))
            if n != len(points) + 1:
                raise ValueError(f"point {n} follows point {len(points)}: {line[:60]!r}")
            current = points[n] = Point(n, max(chapters), [line])
            continue
        if current is None:
            raise ValueError(f"text outside any point in chapter {max(chapters)}: {line[:60]!r}")
        current.lines.append(line)  # a sub-item "1) ..." or a paragraph of the same point
    if not points:
        raise ValueError("no chapters/points found: is this the text of the Rules?")
    return Seed(chapters, points)


def clause_sort_key(number: str) -> tuple[int, ...]:
    """Same order as harness.reporting.clauses.clause_sort_key (kept independent so that this script runs
    even while rules.yaml is being repaired)."""
    return tuple(int(part) for part in number.split("."))


def load_rules(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    data = data or {}
    data.setdefault("chapters", {})
    data.setdefault("clauses", [])
    return data


def refresh(data: dict[str, Any], seed: Seed) -> list[str]:
    """Bring ``data`` in line with the seed, in place; returns what changed (empty: already in line)."""
    changes: list[str] = []
    clauses: list[dict[str, Any]] = data["clauses"]
    known = {str(c["number"]) for c in clauses}
    for p in seed.points.values():
        if p.chapter in CERTIFIED_CHAPTERS and str(p.number) not in known:
            clauses.append({"number": str(p.number), "chapter": p.chapter, "kind": "out of scope", "suites": [],
                            "gist": "", "note": "new in the seed: gist, kind and suites to be written by hand"})
            changes.append(f"clause {p.number}: added (write its gist, kind and suites)")
    for c in clauses:
        number = str(c["number"])
        text, chapter = seed.text(number), seed.chapter(number)
        if c.get("text_ru") != text:
            changes.append(f"clause {number}: text_ru differs from the seed")
            c["text_ru"] = text
        if c.get("chapter") != chapter:
            changes.append(f"clause {number}: chapter {c.get('chapter')} -> {chapter}")
            c["chapter"] = chapter
    chapters: dict[int, dict[str, str]] = data["chapters"]
    for n in sorted({c["chapter"] for c in clauses}):
        entry = chapters.setdefault(n, {"title": ""})
        if entry.get("title_ru") != seed.chapters[n]:
            changes.append(f"chapter {n}: title_ru differs from the seed")
            entry["title_ru"] = seed.chapters[n]
    data["chapters"] = dict(sorted(chapters.items()))
    data["clauses"] = sorted(clauses, key=lambda c: clause_sort_key(str(c["number"])))
    if [str(c["number"]) for c in clauses] != [str(c["number"]) for c in data["clauses"]]:
        changes.append("clauses put in the Rules' order")
    return changes


class _Flow(list):  # type: ignore[type-arg]
    """A list written on one line (suites)."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


def _represent_flow(dumper: yaml.SafeDumper, value: _Flow) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Flow, _represent_flow)

_CLAUSE_FIELDS = ("number", "chapter", "kind", "suites", "gist", "note", "text_ru")


def dump_rules(data: dict[str, Any]) -> str:
    """rules.yaml in its one canonical layout, so that re-running the script on an unchanged seed changes
    nothing and a real change shows as a small diff."""
    out: dict[str, Any] = {
        "chapters": {n: {"title": ch.get("title", ""), "title_ru": ch.get("title_ru", "")}
                     for n, ch in data["chapters"].items()},
        "clauses": [],
    }
    for c in data["clauses"]:
        unknown = set(c) - set(_CLAUSE_FIELDS)
        if unknown:
            raise ValueError(f"clause {c.get('number')}: unknown fields {sorted(unknown)}")
        row: dict[str, Any] = {"number": str(c["number"]), "chapter": int(c["chapter"]),
                               "kind": c.get("kind", ""), "suites": _Flow(c.get("suites") or []),
                               "gist": c.get("gist", "")}
        if c.get("note"):
            row["note"] = c["note"]
        row["text_ru"] = c.get("text_ru", "")
        out["clauses"].append(row)
    body = yaml.dump(out, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return HEADER + "\n" + body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seed", type=Path, help="the Russian text of the Rules (plain text, UTF-8)")
    ap.add_argument("--rules", type=Path, default=DEFAULT_RULES, help=f"the catalogue (default: {DEFAULT_RULES})")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the catalogue differs from the seed")
    args = ap.parse_args(argv)
    seed = parse_seed(args.seed.read_text(encoding="utf-8"))
    data = load_rules(args.rules)
    changes = refresh(data, seed)
    for change in changes:
        print(change, file=sys.stderr)
    if args.check:
        if changes:
            print(f"{args.rules}: {len(changes)} difference(s) from {args.seed}", file=sys.stderr)
            return 1
        print(f"{args.rules}: {len(data['clauses'])} clauses match {args.seed}")
        return 0
    text = dump_rules(data)
    if not args.rules.exists() or args.rules.read_text(encoding="utf-8") != text:
        args.rules.write_text(text, encoding="utf-8")
        print(f"{args.rules}: written, {len(data['clauses'])} clauses")
    else:
        print(f"{args.rules}: unchanged, {len(data['clauses'])} clauses")
    missing = [str(c["number"]) for c in data["clauses"] if not c.get("gist")]
    if missing:
        print(f"clauses without a gist (write them by hand): {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
