"""The clause catalogue is complete and honest: every point of chapters 9-15 once, each with its kind, gist,
suites and the Russian wording; and tools/extract_rules.py keeps that wording in line with the Rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.reporting.clauses import (
    CHAPTER_TITLES,
    CHAPTER_TITLES_RU,
    CLAUSES,
    KINDS,
    SUITES,
    chapter_of,
    clause_of_check,
    clause_sort_key,
)

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "harness" / "reporting" / "rules.yaml"
EXTRACT = ROOT / "tools" / "extract_rules.py"
SEED = Path("/work/shared/seed/000_100df3c22d23f6f4.txt")

CHAPTER_POINTS = {9: (49, 51), 10: (52, 57), 11: (58, 62), 12: (63, 72), 13: (73, 79), 14: (80, 86), 15: (87, 97)}
OUTSIDE = {"8.1": 3, "16": 4, "18": 4, "19": 4, "20": 4, "21": 4, "25": 5, "30": 6, "31": 6, "34": 7, "38.2": 8,
           "39.2": 8, "41": 8, "48": 8}


def test_every_point_of_chapters_9_to_15_is_listed_exactly_once():
    numbers = [str(row["number"]) for row in yaml.safe_load(RULES.read_text(encoding="utf-8"))["clauses"]]
    assert len(numbers) == len(set(numbers)) == len(CLAUSES)
    points = sorted(int(n) for n in numbers if "." not in n and 49 <= int(n) <= 97)
    assert points == list(range(49, 98))
    for chapter, (lo, hi) in CHAPTER_POINTS.items():
        assert {n for n in range(lo, hi + 1) if CLAUSES[str(n)].chapter == chapter} == set(range(lo, hi + 1))


def test_clauses_outside_chapters_9_to_15_that_requirements_names():
    assert {n: CLAUSES[n].chapter for n in OUTSIDE if n in CLAUSES} == OUTSIDE
    assert {n for n in CLAUSES if not 49 <= clause_sort_key(n)[0] <= 97} == set(OUTSIDE)


@pytest.mark.parametrize("number", list(CLAUSES))
def test_every_clause_is_complete(number):
    c = CLAUSES[number]
    assert c.number == number
    assert c.gist.strip() and c.text_ru.strip()
    assert c.kind in KINDS
    assert c.chapter in CHAPTER_TITLES and c.chapter in CHAPTER_TITLES_RU
    assert set(c.suites) <= set(SUITES) and len(c.suites) == len(set(c.suites))
    assert all(line == line.strip() and line for line in c.text_ru.split("\n")), "lines stripped, no blank lines"
    assert not c.text_ru.startswith(f"{number.split('.')[-1]}"), "the clause's own number is not part of its text"


def test_chapter_titles():
    assert set(CHAPTER_TITLES) == set(CHAPTER_TITLES_RU) == {c.chapter for c in CLAUSES.values()}
    assert CHAPTER_TITLES[15] == "Requirements for measuring instruments and metering equipment"
    assert CHAPTER_TITLES_RU[15].startswith("Требования к средствам измерений")
    assert all(t.strip() for t in (*CHAPTER_TITLES.values(), *CHAPTER_TITLES_RU.values()))


def test_kinds():
    documentary = {n for n, c in CLAUSES.items() if c.kind == "documentary"}
    assert {"50", "58", "59", "72", "79", "87", "93"} <= documentary
    assert CLAUSES["49"].kind == "automatic+documentary"
    assert CLAUSES["16"].kind == "automatic"  # of the harness's own (signed) output
    assert CLAUSES["34"].kind == "out of scope"
    assert all(CLAUSES[n].kind == "automatic" for n in ("95", "96", "97"))
    assert all("documentation" in c.suites for c in CLAUSES.values() if c.kind == "documentary")


def test_suites_of_the_metering_clauses():
    assert set(CLAUSES["95"].suites) == {"nvm", "registers", "tariffs", "clock"}
    assert set(CLAUSES["97"].suites) == {"journal"}
    assert set(CLAUSES["80"].suites) == {"interval_data", "failover", "buffering", "access_control"}


def test_rules_order():
    order = list(CLAUSES)
    assert order == sorted(order, key=clause_sort_key)
    assert order[0] == "8.1" and order[-1] == "97"
    assert order.index("34") < order.index("38.2") < order.index("39.2") < order.index("41")
    assert clause_sort_key("8.1") < clause_sort_key("16") < clause_sort_key("38") < clause_sort_key("38.2")
    with pytest.raises(ValueError):
        clause_sort_key("x")


def test_chapter_of():
    assert chapter_of("95") == 15
    assert chapter_of("49") == 9 and chapter_of("79") == 13 and chapter_of("80") == 14
    assert chapter_of("8.1") == 3 and chapter_of("16") == 4 and chapter_of("38.2") == 8
    assert chapter_of("34.2") == 7 and chapter_of("95.1") == 15
    assert chapter_of("5") is None and chapter_of("nonsense") is None


def test_clause_of_check():
    assert clause_of_check("KZ-95-03") == "95"
    with pytest.raises(ValueError):
        clause_of_check("95-03")


def test_russian_wording():
    assert CLAUSES["95"].text_ru.startswith("Приборы учета электрической энергии")
    assert CLAUSES["95"].text_ru.endswith("как суммарно, так и по каждому тарифу.")
    assert CLAUSES["96"].text_ru.startswith("Приборы учета тепловой энергии")
    assert CLAUSES["8.1"].text_ru.startswith("полнота, достоверность, своевременность")
    assert CLAUSES["38.2"].text_ru.startswith("сигнализацию о нарушениях")
    assert CLAUSES["39.2"].text_ru.startswith("автоматическую сигнализацию о нарушениях")
    lines = CLAUSES["34"].text_ru.split("\n")
    assert len(lines) == 4 and [line[:3] for line in lines[1:]] == ["1) ", "2) ", "3) "]


def _synthetic_seed(last_chapter: int, sub_item_two: str = "подпункт два.") -> str:
    """An order's preamble with its own point 1, chapter 1 with point 1 and its sub-items (nbsp indentation, a
    blank line with a tab), empty chapters up to ``last_chapter``, which holds point 2."""
    empty = "".join(f" Глава {n}. Пустая\n" for n in range(2, last_chapter))
    indent = "\u00a0" * 5 + " "
    return (f"Приказ\n{indent}1. Утвердить прилагаемые Правила.\n{indent}1) не пункт Правил;\n\n"
            f" Глава 1. Общие положения\n\n{indent}1. Первый пункт:\n\n{indent}1) подпункт один;\n\t\n"
            f"{indent}2) {sub_item_two}\n{empty} Глава {last_chapter}. Требования\n{indent}2. Второй пункт.\n")


def _extract(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXTRACT), *args], capture_output=True, text=True, timeout=60)


def test_extractor_on_a_synthetic_seed(tmp_path):
    """Runs in CI too: the preamble's points are skipped, hand-written fields are kept, --check sees drift."""
    seed, rules = tmp_path / "seed.txt", tmp_path / "rules.yaml"
    seed.write_text(_synthetic_seed(2), encoding="utf-8")
    rules.write_text(yaml.safe_dump({
        "chapters": {1: {"title": "General"}},
        "clauses": [{"number": "1.2", "chapter": 1, "kind": "documentary", "suites": ["documentation"],
                     "gist": "hand-written"},
                    {"number": "1", "chapter": 5, "kind": "automatic", "suites": [], "gist": "whole point"}],
    }, allow_unicode=True), encoding="utf-8")
    assert _extract(str(seed), "--rules", str(rules), "--check").returncode == 1
    done = _extract(str(seed), "--rules", str(rules))
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load(rules.read_text(encoding="utf-8"))
    assert [c["number"] for c in data["clauses"]] == ["1", "1.2"]
    whole, sub = data["clauses"]
    assert whole["text_ru"] == "Первый пункт:\n1) подпункт один;\n2) подпункт два." and whole["chapter"] == 1
    assert sub["text_ru"] == "подпункт два." and sub["gist"] == "hand-written" and sub["kind"] == "documentary"
    assert data["chapters"][1] == {"title": "General", "title_ru": "Общие положения"}
    before = rules.read_text(encoding="utf-8")
    assert _extract(str(seed), "--rules", str(rules), "--check").returncode == 0
    assert _extract(str(seed), "--rules", str(rules)).returncode == 0
    assert rules.read_text(encoding="utf-8") == before, "re-running on the same seed changes nothing"
    seed.write_text(_synthetic_seed(2, "подпункт два (изм.)."), encoding="utf-8")
    assert _extract(str(seed), "--rules", str(rules), "--check").returncode == 1


def test_extractor_adds_a_missing_point_of_chapters_9_to_15(tmp_path):
    seed, rules = tmp_path / "seed.txt", tmp_path / "rules.yaml"
    seed.write_text(_synthetic_seed(9), encoding="utf-8")
    rules.write_text("chapters: {}\nclauses: []\n", encoding="utf-8")
    done = _extract(str(seed), "--rules", str(rules))
    assert done.returncode == 1 and "without a gist" in done.stderr  # a human must write gist and kind
    assert [c["number"] for c in yaml.safe_load(rules.read_text(encoding="utf-8"))["clauses"]] == ["2"]


@pytest.mark.skipif(not SEED.exists(), reason="the Russian original of the Rules is not available (CI)")
def test_catalogue_matches_the_seed():
    done = _extract(str(SEED), "--check")
    assert done.returncode == 0, done.stderr
