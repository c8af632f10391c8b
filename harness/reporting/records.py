"""What a check leaves behind: its measurements and its verdict (OpenHTF-style, not bare asserts).

A Check collects measurements — value, limit, unit, pass/fail — as a conformance test runs;
the record of it is the evidence the certificate rests on. ``require()`` turns any failed
measurement into an AssertionError so pytest's outcome agrees with the record.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.reporting.texts import Msg, from_data, msg_data
from harness.verdicts import Verdict


def _num(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else str(v)
    return v


def _shown(value: Any) -> Msg | str:
    """A measured or expected value as shown: a yes/no answer translatable, a number as measured."""
    if isinstance(value, bool):
        return Msg("True") if value else Msg("False")
    return value if isinstance(value, Msg) else str(_num(value))


class Measurement(BaseModel):
    name: str
    measured: float | int | str | bool | None
    limit: str = ""
    unit: str | None = None
    passed: bool
    note: str = ""
    texts: dict[str, Any] = Field(default_factory=dict, description="templates of name/measured/limit/note")

    def text(self, field: str) -> Msg | str:
        """A text field as a Msg when the check wrote a template (translatable), else as written."""
        return from_data(self.texts.get(field)) or Msg.literal(str(getattr(self, field)))

    def describe(self) -> Msg:
        """"name: value unit (limit L) — note", each part translatable and the numbers as measured."""
        value = self.text("measured") if isinstance(self.measured, str) else _shown(self.measured)
        if self.unit:
            value = Msg("{value} {unit}", value=value, unit=Msg.in_context("unit", self.unit))
        out = Msg("{name}: {value}", name=self.text("name"), value=value)
        if self.limit:
            out = Msg("{text} (limit {limit})", text=out, limit=self.text("limit"))
        if self.note:
            out = Msg("{text} — {note}", text=out, note=self.text("note"))
        return out


class Chart(BaseModel):
    """A picture of the evidence for the readable report: named (x, y) series and marked events.

    ``kind`` says how to draw it: ``line`` (values over time), ``step`` (a state over time, e.g. the
    active channel), ``scatter`` (points, e.g. journal entries by kind) or ``histogram`` (x = bin,
    y = count, e.g. response times). Events are vertical markers (a power cut, a switchover).
    """

    title: str
    x_label: str
    y_label: str
    kind: Literal["line", "step", "scatter", "histogram"] = "line"
    series: dict[str, list[tuple[float, float]]]
    events: list[tuple[float, str]] = Field(default_factory=list)
    texts: dict[str, Any] = Field(default_factory=dict, description="templates of title/labels/series/events")


class Attempt(BaseModel):
    """One run of a check that was re-run after a failure (flake detection)."""

    verdict: Verdict
    reason: str = ""
    texts: dict[str, Any] = Field(default_factory=dict, description="template of the reason")

    def text(self) -> Msg | str:
        """The reason as a Msg when it was built from a template (translatable), else as written."""
        return from_data(self.texts.get("reason")) or self.reason


class CheckRecord(BaseModel):
    """One line of checks.jsonl."""

    id: str
    title: str
    suite: str
    clauses: list[str]
    dut: str
    verdict: Verdict
    reason: str = ""
    kind: Literal["measured", "documentary"] = "measured"
    measurements: list[Measurement] = Field(default_factory=list)
    charts: list[Chart] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list, description="earlier runs, when re-run")
    nodeid: str = ""
    started: float = 0.0
    finished: float = 0.0
    texts: dict[str, Any] = Field(default_factory=dict, description="template of the reason (title: a msgid)")

    def text(self) -> Msg | str:
        """The reason as a Msg when it was built from a template (translatable), else as written."""
        return from_data(self.texts.get("reason")) or self.reason

    @property
    def duration_s(self) -> float:
        return max(0.0, self.finished - self.started)


class CheckFailed(AssertionError):
    """A measurement was outside its limit."""


class Check:
    """Handed to every conformance test as the ``check`` fixture."""

    def __init__(self, check_id: str, title: str, suite: str, clauses: list[str], dut: str) -> None:
        self.id, self.title, self.suite, self.clauses, self.dut = check_id, title, suite, clauses, dut
        self.measurements: list[Measurement] = []
        self.charts: list[Chart] = []

    # -- recording --------------------------------------------------------------------------------
    def measure(self, name: str, measured: Any, *, passed: bool, limit: str = "", unit: str | None = None,
                note: str = "") -> Measurement:
        texts = {k: d for k, v in (("name", name), ("measured", measured), ("limit", limit), ("note", note))
                 if (d := msg_data(v))}
        m = Measurement(name=name, measured=_num(measured), limit=limit, unit=unit, passed=bool(passed),
                        note=note, texts=texts)
        self.measurements.append(m)
        return m

    def at_most(self, name: str, measured: float, limit: float, unit: str | None = None, note: str = "") -> bool:
        return self.measure(name, measured, passed=measured <= limit, limit=Msg("≤ {limit}", limit=_shown(limit)),
                            unit=unit,
                            note=note).passed

    def at_least(self, name: str, measured: float, limit: float, unit: str | None = None,
                 note: str = "") -> bool:
        return self.measure(name, measured, passed=measured >= limit, limit=Msg("≥ {limit}", limit=_shown(limit)),
                            unit=unit,
                            note=note).passed

    def within(self, name: str, measured: float, low: float, high: float, unit: str | None = None,
               note: str = "") -> bool:
        return self.measure(name, measured, passed=low <= measured <= high,
                            limit=Msg("{low} … {high}", low=_shown(low),
                                      high=_shown(high)), unit=unit, note=note).passed

    def equal(self, name: str, measured: Any, expected: Any, unit: str | None = None, note: str = "") -> bool:
        return self.measure(name, measured, passed=measured == expected, limit=Msg("= {expected}",
                                                                                   expected=_shown(expected)),
                            unit=unit, note=note).passed

    def chart(self, title: str, series: dict[str, list[tuple[float, float]]], *, x_label: str, y_label: str,
              kind: Literal["line", "step", "scatter", "histogram"] = "line",
              events: list[tuple[float, str]] | None = None) -> Chart:
        """Keep a picture of what was measured for the readable report (never a verdict by itself)."""
        texts: dict[str, Any] = {k: d for k, v in (("title", title), ("x_label", x_label), ("y_label", y_label))
                                 if (d := msg_data(v))}
        labels = {str(k): d for k in [*series, *(label for _x, label in events or [])] if (d := msg_data(k))}
        if labels:
            texts["labels"] = labels
        c = Chart(title=title, x_label=x_label, y_label=y_label, kind=kind,
                  series={k: [(float(x), float(y)) for x, y in v] for k, v in series.items()},
                  events=[(float(x), str(label)) for x, label in events or []], texts=texts)
        self.charts.append(c)
        return c

    # -- concluding -------------------------------------------------------------------------------
    @property
    def failures(self) -> list[Measurement]:
        return [m for m in self.measurements if not m.passed]

    @property
    def unjudged(self) -> bool:
        """Nothing measured: such a check can never PASS. Ended without ``require()`` it is INCONCLUSIVE (the
        check judged nothing); ``require()`` itself refuses to conclude over no measurement (FAIL)."""
        return not self.measurements

    def restart(self) -> None:
        """Forget an attempt's evidence before a re-run (the attempt itself is kept by the caller)."""
        self.measurements.clear()
        self.charts.clear()

    def require(self) -> None:
        """Fail the check if any measurement failed (call at the end of every check)."""
        if self.failures:
            shown = Msg.joined("; ", (m.describe() for m in self.failures[:5]))
            if len(self.failures) > 5:
                shown = Msg("{first} (+{n} more)", first=shown, n=len(self.failures) - 5)
            raise CheckFailed(Msg("{id}: {findings}", id=self.id, findings=shown))
        if not self.measurements:
            raise CheckFailed(Msg("{id}: no measurement was made — a check must measure something", id=self.id))


def read_records(path: Path) -> list[CheckRecord]:
    """checks.jsonl as written so far; a line cut short by a kill is dropped (its check runs again)."""
    if not path.exists():
        return []
    records, good = [], 0
    raw = path.read_bytes()
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            records.append(CheckRecord.model_validate_json(line))
        except ValueError:
            break
        good += len(line)
    if good != len(raw):  # cut the torn tail so that new records start on a line of their own
        with path.open("r+b") as f:
            f.truncate(good)
    return records
