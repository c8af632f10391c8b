"""Undo what a check changed on the DUT, without hiding why the check stopped.

If the check is already failing or being interrupted (Ctrl-C during a power cut), an error from
the clean-up — typically "cannot connect" to a DUT that is still powered off — must not replace
the original exception; otherwise an interrupted run would carry on and report the meter as
failing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def restoring(undo: Callable[[], object]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            undo()
        raise
    undo()
