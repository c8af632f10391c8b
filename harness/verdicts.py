"""Verdict vocabulary shared by checks, injectors and reports.

A check ends PASS or FAIL on what it measured; INCONCLUSIVE when it could not decide (a window
too short for the register resolution, a bench that cannot provoke the condition) and N/A when
the requirement does not apply — both always with a reason a person can act on.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_APPLICABLE = "N/A"
    FLAKY = "FLAKY"  # failed, then passed on a re-run: counts as INCONCLUSIVE for certification
    NOT_TESTED = "NOT TESTED"  # clause level only: no check ran


class Inconclusive(Exception):
    """Raise from a check (or anything it calls) when the harness cannot decide; give the reason."""


class NotApplicable(Exception):
    """Raise from a check when the requirement does not apply to this DUT; give the reason."""
