"""Attempt counting for the toy suites of the harness's own tests: how often a check has run, kept in files
named by $TEK_FLAKY_DIR (a re-run is a new call of the same test function, so memory cannot count it)."""

from __future__ import annotations

import os
from pathlib import Path


def attempt(name: str) -> int:
    """This attempt's number (1 for the first) for the counter ``name``."""
    counter = Path(os.environ["TEK_FLAKY_DIR"]) / name
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    return n
