"""cl. 62 analytics: over a period, the server's total, maximum and minimum consumption (the meters that consumed
most and least) and its dynamics (the per-day series) equal the harness's own computation from the field."""

from __future__ import annotations

import pytest

from harness.config.amr import ReportKind
from harness.conformance.amr.analytics_days import days_of
from harness.conformance.amr.consumption import (
    MeterFigure,
    equal,
    figure_shown,
    figures,
    in_canonical,
    judge_truth,
    kinds_to_judge,
    sampled_period,
    total_of,
)
from harness.conformance.amr.field_truth import admin, amr_spec, require_declared
from harness.reporting.texts import Msg

pytestmark = pytest.mark.dut_kind("amr_server")


def _judge_extreme(check, label: Msg, got: tuple[str, float] | None, unit_of_answer: str,
                   expected: dict[str, MeterFigure], pick, unit: str) -> None:
    """The meter named as the maximum (``pick`` = max) or minimum (min) consumption and its figure: the harness's
    own extreme, and a meter whose figure it is (meters of equal consumption may each be named)."""
    known = {m: f.consumption for m, f in expected.items() if f.consumption is not None}
    if not known:
        return
    want = pick(known.values())
    meters = sorted(m for m, v in known.items() if equal(v, want))
    value = None if got is None else in_canonical(got[1], unit_of_answer)
    check.measure(label, Msg("none") if got is None or value is None else
                  Msg("{meter}: {value:.9g} {unit}", meter=got[0], value=value, unit=unit),
                  passed=got is not None and equal(value, want) and got[0] in meters,
                  limit=Msg("{figure}, meter {meters}", figure=figure_shown(want, unit), meters=_either(meters)))


def _either(names: list[str]) -> str:
    """"a or b or c", the conjunction translated (a value of a template, not a word glued into it)."""
    return names[0] if len(names) == 1 else Msg("{first} or {rest}", first=names[0], rest=_either(names[1:]))


@pytest.mark.check("KZ-62-08", "analytics: total, maximum and minimum consumption and the per-day dynamics over a "
                   "period equal the harness's own computation from the field")
def test_analytics(dut, check):
    spec = amr_spec(dut)
    require_declared(check, spec.analytics, Msg("analytics declared"),
                     Msg("total, maximum, minimum and dynamics of consumption (cl. 62)"))
    kinds = kinds_to_judge(dut, spec.reports or list(ReportKind))
    session = admin(dut)
    try:
        period = sampled_period(dut, session, spec.timings.poll_interval_s)
        for kind in kinds:
            expected = figures(dut, session, period, kind)
            unit = period.unit(next(iter(expected)))
            got = session.analytics(kind.value, period.start, period.end)
            label = Msg("{kind} analytics of {period}", kind=kind.value, period=period.label)
            judge_truth(check, label, expected)
            total = in_canonical(got.total, got.unit)
            check.measure(Msg("{label}: total", label=label), Msg("none") if total is None else total,
                          unit=None if total is None else unit, passed=equal(total, total_of(expected)),
                          limit=figure_shown(total_of(expected), unit))
            _judge_extreme(check, Msg("{label}: maximum", label=label), got.maximum, got.unit, expected, max, unit)
            _judge_extreme(check, Msg("{label}: minimum", label=label), got.minimum, got.unit, expected, min, unit)
            series = dict(got.dynamics)
            days = days_of(period.start, period.end)
            check.measure(Msg("{label}: days of the dynamics", label=label), ", ".join(series) or Msg("none"),
                          passed=list(series) == [d for d, _, _ in days], limit=", ".join(d for d, _, _ in days))
            for date, a, b in days:
                want_day = total_of(figures(dut, session, period, kind, a, b))
                value = series.get(date)
                day_value = None if value is None else in_canonical(value, got.unit)
                check.measure(Msg("{label}: {date}", label=label, date=date),
                              Msg("none") if day_value is None else day_value,
                              unit=None if day_value is None else unit, passed=equal(day_value, want_day),
                              limit=figure_shown(want_day, unit))
    finally:
        session.close()
    check.require()
