"""Allure labels of one check: the tree reads chapter → clause → check, the test is titled with the check.

Set by the pytest plugin as a check starts (labels) and in its call phase (title); the verdicts themselves
are mapped at the end of the run (``allure_verdicts.py``).
"""

from __future__ import annotations

from harness.reporting.clauses import CHAPTER_TITLES, chapter_of
from harness.reporting.records import Check


def label(c: Check) -> None:
    """The Allure tree reads chapter → clause → check (parentSuite/suite, and epic/feature/story).

    The title is set in the call phase (``title``): allure-pytest names the test after setup.
    Verdicts are mapped at the end of the session (reporting/allure_verdicts.py), keyed by ``as_id`` + ``dut``.
    """
    try:
        import allure
    except ImportError:  # allure-pytest is a dependency; stay usable without it all the same
        return
    from harness.reporting.clauses import CLAUSES

    chapter = chapter_of(c.clauses[0])
    chapter_title = f"Chapter {chapter}. {CHAPTER_TITLES.get(chapter or 0, '')}".strip()
    known = CLAUSES.get(c.clauses[0])
    clause = f"cl. {c.clauses[0]}" + (f" — {known.gist}" if known and known.gist else "")
    allure.dynamic.epic(chapter_title)
    allure.dynamic.feature(f"cl. {c.clauses[0]}")
    allure.dynamic.story(c.suite)
    allure.dynamic.parent_suite(chapter_title)
    allure.dynamic.suite(clause)
    allure.dynamic.id(c.id)
    allure.dynamic.label("dut", c.dut)
    allure.dynamic.tag(c.dut)


def title(c: Check) -> None:
    try:
        import allure
    except ImportError:
        return
    allure.dynamic.title(f"{c.id} {c.title} [{c.dut}]")


# ---- outcomes -----------------------------------------------------------------------------------
