"""Consumption over a period as the harness knows it: what the server's reports and analytics are judged against
(cl. 62).

The contract defines a meter's consumption over ``[from, to)`` as the value of its last reading in the period
minus that of its first. The harness takes those two readings from the server's reading list and checks each
against the field itself: while the period runs it reads every field meter every ``SAMPLE_S`` with its own
driver, and the server's value at a reading time must lie between the harness's own reads before and after that
time (± the rig's clock tolerance, ± one register step). Its own sum of those truthful readings is then exact,
and a report's or an analytics figure must equal it (to float rounding), not merely fall near it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.config.amr import ReportKind
from harness.conformance.amr.field_truth import (
    SAMPLES_PER_INTERVAL,
    Truth,
    bounded_wait,
    field_meters,
    sample_field,
    wait_for,
)
from harness.devices.amr.api import AmrReading, AmrSession
from harness.quantities import UNIT_FACTORS
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

SAMPLE_S = 0.2  # how often the harness reads each field meter while a period runs (wall time)
PERIOD_INTERVALS = 2  # the period spans this many polling intervals: at least two readings per meter in it


@dataclass(frozen=True)
class Range:
    """A quantity the harness knows to lie in ``[low, high]`` (canonical unit)."""

    low: float
    high: float

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass
class SampledPeriod:
    """A period ``[start, end)`` over which the harness read every field meter itself (``samples``)."""

    start: datetime
    end: datetime
    samples: dict[str, list[Truth]]
    tolerance_s: float

    def unit(self, meter: str) -> str:
        """The canonical unit the harness's reads of the meter are in."""
        return self.samples[meter][0].unit if self.samples[meter] else ""

    @property
    def label(self) -> str:
        return f"{self.start.isoformat(timespec='seconds')}..{self.end.isoformat(timespec='seconds')}"

    def register_at(self, meter: str, t: float) -> Range | None:
        """What the meter's register held at (server) time ``t``; None where the harness has no read on each side."""
        series = self.samples[meter]
        before = [s for s in series if s.t <= t - self.tolerance_s]
        after = [s for s in series if s.t >= t + self.tolerance_s]
        if not before or not after:
            return None
        step = max(before[-1].resolution, after[0].resolution)
        return Range(min(before[-1].value, after[0].value) - step, max(before[-1].value, after[0].value) + step)

    def figure(self, meter: str, readings: list[AmrReading], start: datetime | None = None,
               end: datetime | None = None) -> MeterFigure:
        """The meter's consumption over ``[start, end)`` (default: the whole period) by the contract's definition
        from the server's readings in it, with each of the two readings judged against the harness's own reads."""
        start, end = start or self.start, end or self.end
        inside = sorted((r for r in readings if start <= r.reading_time < end), key=lambda r: r.reading_time)
        if not inside:
            return MeterFigure(meter, None, self.unit(meter), [])
        ends = [inside[0], inside[-1]]
        values = [in_canonical(r.value, r.unit) for r in ends]
        judged = []
        for r, value in zip(ends, values, strict=True):
            bracket = self.register_at(meter, r.reading_time.timestamp())
            judged.append((r, value, bracket, value is not None and bracket is not None and bracket.holds(value)))
        if inside[0].unit == inside[-1].unit:  # subtract in the readings' own unit, then convert: a large register
            consumption = in_canonical(inside[-1].value - inside[0].value, inside[0].unit)  # keeps its precision
        else:
            consumption = None if None in values else values[1] - values[0]  # type: ignore[operator]
        return MeterFigure(meter, consumption, self.unit(meter), judged)


@dataclass(frozen=True)
class MeterFigure:
    """One meter's consumption as the harness computes it (canonical unit; None: no reading in the period) and
    its first and last reading with the bracket of the harness's own reads at their times."""

    meter: str
    consumption: float | None
    unit: str
    ends: list[tuple[AmrReading, float | None, Range | None, bool]]

    @property
    def truthful(self) -> bool:
        return all(ok for *_, ok in self.ends)

    def evidence(self) -> Msg:
        return Msg.joined("; ", (Msg("{value} at {time}: register {bracket}", value=r.value, time=r.reading_time
                                     .isoformat(timespec="milliseconds"), bracket=Msg("not bracketed") if b is None
                                     else Msg("{low:.9g} … {high:.9g} {unit}", low=b.low, high=b.high,
                                              unit=self.unit)) for r, _, b, _ in self.ends))


_PERIODS: dict[int, tuple[Any, SampledPeriod]] = {}  # id(dut) -> (dut, its period): a DUT runtime is unhashable


def sampled_period(dut: Any, session: AmrSession, interval_s: float) -> SampledPeriod:
    """A period of ``PERIOD_INTERVALS`` polling intervals over which the harness read the whole field, made once
    per DUT and shared by the checks of reports and analytics (a past period's figures must not change)."""
    known = _PERIODS.get(id(dut))
    if known is not None and known[0] is dut:
        return known[1]
    meters = field_meters(dut)
    tolerance = dut.timing.clock_tolerance_s
    span = PERIOD_INTERVALS * interval_s
    # Reads start a clock tolerance before the period and end a tolerance after it, so that every reading the
    # server stamps inside it has a read of the harness on each side; then the server is given up to an interval
    # (and a tolerance) to list a reading after the period, so everything stamped in it is stored.
    # Everything in the DUT's time (``dut.time``: the server and its field advanced together where they can be).
    total = tolerance + span + tolerance + SAMPLE_S
    bounded_wait(dut, total + interval_s + tolerance, Msg("reading the field over a report period"))
    start = datetime.fromtimestamp(dut.time.device_now() + tolerance, UTC)
    end = start + timedelta(seconds=span)
    samples = sample_field(dut, total, interval_s / SAMPLES_PER_INTERVAL if dut.time.fast else SAMPLE_S)
    wait_for(lambda: True if all(session.readings(name, since=end) for name in meters) else None,
             interval_s + tolerance, dut)
    period = SampledPeriod(start, end, samples, tolerance)
    _PERIODS[id(dut)] = (dut, period)
    return period


def meters_of(dut: Any, kind: ReportKind) -> list[str]:
    """The field meters of a report's kind (electricity meters for an electricity report …)."""
    return [name for name, m in field_meters(dut).items() if m.profile.kind.value == kind.meter_kind]


def kinds_to_judge(dut: Any, kinds: list[ReportKind]) -> list[ReportKind]:
    """The declared kinds the field has meters of; INCONCLUSIVE when it has none of any."""
    judged = [k for k in kinds if meters_of(dut, k)]
    if not judged:
        raise Inconclusive(Msg("the field has no meter of the kinds the server reports on ({kinds})",
                               kinds=", ".join(k.value for k in kinds)))
    return judged


def in_canonical(value: float, unit: str | None) -> float | None:
    known = UNIT_FACTORS.get(unit or "")
    return None if known is None else value * known[1]


def figures(dut: Any, session: AmrSession, period: SampledPeriod, kind: ReportKind,
            start: datetime | None = None, end: datetime | None = None) -> dict[str, MeterFigure]:
    """The harness's own figure for each field meter of ``kind`` over the period (or a part of it)."""
    return {name: period.figure(name, session.readings(name, since=period.start - timedelta(seconds=1)), start, end)
            for name in meters_of(dut, kind)}


def total_of(figures: dict[str, MeterFigure]) -> float:
    return sum(f.consumption for f in figures.values() if f.consumption is not None)


def equal(got: float | None, want: float | None) -> bool:
    """Equal to float rounding (the server may sum in its own unit, the harness in the canonical one)."""
    return got is not None and want is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def judge_truth(check: Any, label: Msg, figures: dict[str, MeterFigure]) -> None:
    """The readings behind the figures against the field: each a value the meter's register showed at its time."""
    wrong = [f for f in figures.values() if not f.truthful]
    check.measure(Msg("{label}: readings behind the figures", label=label),
                  Msg("{right} of {n} meters' first and last reading equal to the register", n=len(figures),
                      right=len(figures) - len(wrong)),
                  passed=not wrong and any(f.consumption is not None for f in figures.values()),
                  limit=Msg("each within the harness's own reads at its time (± clock tolerance, ± one step)"),
                  note=Msg.joined("; ", (Msg("{meter}: {evidence}", meter=f.meter, evidence=f.evidence())
                                         for f in wrong[:2])))


def figure_shown(value: float | None, unit: str) -> Msg:
    if value is None:
        return Msg("no reading in the period")
    return Msg("= {value:.9g} {unit} (harness: last minus first of the server's readings)", value=value, unit=unit)
