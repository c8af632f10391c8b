"""How a check's end becomes its verdict and reason (the rules of harness/verdicts.py applied to what happened).

A check that returned is FAIL on its failed measurements, INCONCLUSIVE when it measured nothing, else PASS; one
that raised is judged by what it raised — the device's error or an assertion is a FAIL, the bench's trouble and
the harness's own errors are INCONCLUSIVE, never a verdict on the device.
"""

from __future__ import annotations

from typing import Any

from harness.reporting.records import Check
from harness.reporting.texts import Msg, msg_data
from harness.verdicts import Inconclusive, NotApplicable, Verdict


def failures_text(c: Check) -> str:
    """The reason of a FAIL on measurements: the first three failed ones."""
    return Msg.joined("; ", (m.describe() for m in c.failures[:3]))


def verdict(c: Check | None, exc: BaseException | None) -> tuple[Verdict, str]:
    """The verdict and reason of a check that ended with ``exc`` raised (None: it returned)."""
    from harness.bench import BenchError
    from harness.devices.api import DeviceError
    from harness.fault_injection.launcher import LaunchError

    if exc is None:
        if c is not None and c.failures:
            return Verdict.FAIL, failures_text(c)
        if c is None or c.unjudged:
            return Verdict.INCONCLUSIVE, Msg("nothing measured: the check recorded no measurement, so it judged "
                                             "nothing")
        return Verdict.PASS, ""
    text = exc_text(exc)
    if isinstance(exc, Inconclusive):
        return Verdict.INCONCLUSIVE, text
    if isinstance(exc, NotApplicable):
        return Verdict.NOT_APPLICABLE, text
    if isinstance(exc, LaunchError | BenchError):
        return Verdict.INCONCLUSIVE, Msg("bench problem: {text}", text=text)
    if isinstance(exc, AssertionError | DeviceError):
        return Verdict.FAIL, text
    return Verdict.INCONCLUSIVE, Msg("harness error {kind}: {text}", kind=type(exc).__name__, text=text)


def exc_text(exc: BaseException) -> str:
    """An exception's text; the check's Msg itself (translatable) when it raised one."""
    if len(exc.args) == 1 and isinstance(exc.args[0], Msg) and exc.args[0].strip() == exc.args[0]:
        return exc.args[0]
    return str(exc).strip() or type(exc).__name__


def texts(reason: str, title: str = "") -> dict[str, Any]:
    """What a record keeps beside its English reason (and title): the template, when built from one. A title
    written as a plain string is its own msgid and needs none."""
    return {field: data for field, text in (("reason", reason), ("title", title)) if (data := msg_data(text))}
