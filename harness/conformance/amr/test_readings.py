"""cl. 62 automatic and manual reading: readings at the declared interval, each with its update time, each a
value the meter's register showed at that time (the harness's own reads bracket it, within one register step);
a manual reading arrives within the declared time, stamped after the request."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

import pytest

from harness.conformance.amr.field_truth import (
    admin,
    amr_spec,
    bounded_wait,
    field_meters,
    truth,
    wait_for,
    within_bracket,
)
from harness.devices.amr.api import AmrReading
from harness.reporting.texts import Msg

pytestmark = pytest.mark.dut_kind("amr_server")

INTERVALS_OBSERVED = 4  # automatic readings watched per meter


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


@pytest.mark.check("KZ-62-02", "automatic reading: every field meter read at the declared interval (none missed or "
                   "doubled), each reading stamped with its time and equal to the meter's register at that time")
def test_automatic_reading(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    interval = spec.timings.poll_interval_s
    window = bounded_wait(dut, INTERVALS_OBSERVED * interval + interval, Msg("watching automatic readings"))
    tolerance = dut.timing.clock_tolerance_s
    session = admin(dut)
    try:
        known = {name: {r.reading_id for r in session.readings(name)} for name in meters}
        t_start = time.time()
        before = {name: truth(m, dut.field.quantity(name)) for name, m in meters.items()}
        time.sleep(window)
        after = {name: truth(m, dut.field.quantity(name)) for name, m in meters.items()}
        new = {name: [r for r in session.readings(name) if r.reading_id not in known[name]] for name in meters}
        t_end = time.time()
    finally:
        session.close()
    for name in meters:
        auto = sorted((r for r in new[name] if r.source == "auto"), key=lambda r: r.reading_time)
        expected = int(window / interval) - 1
        check.measure(Msg("{name}: automatic readings in {window:g} s", name=name, window=window), len(auto),
                      passed=len(auto) >= expected,
                      limit=Msg("≥ {expected} at a {interval:g} s interval", expected=expected, interval=interval))
        _judge_times(check, name, auto, interval, t_start - tolerance, t_end + tolerance)
        wrong = [(r, why) for r in auto for ok, why in [within_bracket(r, before[name], after[name])] if not ok]
        check.measure(Msg("{name}: readings equal to the meter's register", name=name),
                      Msg("{right} of {n}", right=len(auto) - len(wrong), n=len(auto)),
                      passed=bool(auto) and not wrong,
                      limit=Msg("each within the harness's reads {low:.12g}..{high:.12g} {unit} ± one step",
                                low=before[name].value, high=after[name].value, unit=before[name].unit),
                      note=Msg.joined("; ", (Msg("{value:.12g} {unit} at {time} not in {why}", value=r.value,
                                                 unit=r.unit, time=r.reading_time.isoformat(), why=why)
                                             for r, why in wrong[:3])))
    check.require()


def _judge_times(check, name: str, readings: list[AmrReading], interval: float, earliest: float,
                 latest: float) -> None:
    """Each reading stamped inside the observation (± the rig's clock tolerance); consecutive stamps an interval
    apart: a gap of two intervals is a missed reading, two stamps within half an interval a doubled one."""
    stamps = [r.reading_time.timestamp() for r in readings]
    outside = [s for s in stamps if not earliest <= s <= latest]
    check.measure(Msg("{name}: reading times inside the observation", name=name),
                  Msg("{right} of {n}", right=len(stamps) - len(outside), n=len(stamps)), passed=not outside,
                  limit=f"{_iso(earliest)}..{_iso(latest)}",
                  note=", ".join(_iso(s) for s in outside[:3]))
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    if gaps:
        check.measure(Msg("{name}: longest gap between readings", name=name), round(max(gaps), 3), unit="s",
                      passed=max(gaps) < 2 * interval,
                      limit=Msg("< {limit:g} s (no interval missed)", limit=2 * interval))
        check.measure(Msg("{name}: shortest gap between readings", name=name), round(min(gaps), 3), unit="s",
                      passed=min(gaps) > interval / 2,
                      limit=Msg("> {limit:g} s (no interval doubled)", limit=interval / 2))


@pytest.mark.check("KZ-62-03", "manual reading: a reading requested by the operator arrives within the declared time, "
                   "stamped after the request, equal to the meter's register")
def test_manual_reading(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    limit = spec.timings.manual_read_s
    bounded_wait(dut, limit, Msg("waiting for a manual reading"))
    name, meter = next(iter(meters.items()))
    quantity = dut.field.quantity(name)
    tolerance = dut.timing.clock_tolerance_s
    session = admin(dut)
    try:
        known = {r.reading_id for r in session.readings(name)}
        before = truth(meter, quantity)
        t_request = time.time()
        session.request_reading(name)

        def manual() -> AmrReading | None:
            return next((r for r in session.readings(name) if r.reading_id not in known and r.source == "manual"),
                        None)

        reading, took = wait_for(manual, limit)
        after = truth(meter, quantity)
    finally:
        session.close()
    check.measure(Msg("{name}: manual reading arrived after", name=name), round(took, 3) if reading else
                  Msg("none within {took:.1f} s", took=took), unit="s" if reading else None,
                  passed=reading is not None and took <= limit,
                  limit=Msg("≤ {limit:g} s (declared manual_read_s)", limit=limit))
    if reading is not None:
        stamped = reading.reading_time.timestamp()
        check.measure(Msg("{name}: manual reading stamped", name=name), reading.reading_time.isoformat(),
                      passed=stamped >= t_request - tolerance,
                      limit=Msg("after the request at {time} (± {tolerance:g} s clock tolerance)",
                                time=_iso(t_request), tolerance=tolerance))
        ok, why = within_bracket(reading, before, after)
        check.measure(Msg("{name}: manual reading value", name=name), reading.value, unit=reading.unit, passed=ok,
                      limit=why)
    check.require()
