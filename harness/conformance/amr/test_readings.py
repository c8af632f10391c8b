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

pytestmark = pytest.mark.dut_kind("amr_server")

INTERVALS_OBSERVED = 4  # automatic readings watched per meter


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


@pytest.mark.check("KZ-62-02", "automatic reading: every field meter read at the declared interval (none missed or "
                   "doubled), each reading stamped with its time and equal to the meter's register at that time")
def test_automatic_reading(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    interval = spec.timings.poll_interval_s
    window = bounded_wait(dut, INTERVALS_OBSERVED * interval + interval, "watching automatic readings")
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
        check.measure(f"{name}: automatic readings in {window:g} s", len(auto), passed=len(auto) >= expected,
                      limit=f"≥ {expected} at a {interval:g} s interval")
        _judge_times(check, name, auto, interval, t_start - tolerance, t_end + tolerance)
        wrong = [(r, why) for r in auto for ok, why in [within_bracket(r, before[name], after[name])] if not ok]
        check.measure(f"{name}: readings equal to the meter's register", f"{len(auto) - len(wrong)} of {len(auto)}",
                      passed=bool(auto) and not wrong,
                      limit=f"each within the harness's reads {before[name].value:.12g}..{after[name].value:.12g} "
                            f"{before[name].unit} ± one step",
                      note="; ".join(f"{r.value:.12g} {r.unit} at {r.reading_time.isoformat()} not in {why}"
                                     for r, why in wrong[:3]))
    check.require()


def _judge_times(check, name: str, readings: list[AmrReading], interval: float, earliest: float,
                 latest: float) -> None:
    """Each reading stamped inside the observation (± the rig's clock tolerance); consecutive stamps an interval
    apart: a gap of two intervals is a missed reading, two stamps within half an interval a doubled one."""
    stamps = [r.reading_time.timestamp() for r in readings]
    outside = [s for s in stamps if not earliest <= s <= latest]
    check.measure(f"{name}: reading times inside the observation", f"{len(stamps) - len(outside)} of {len(stamps)}",
                  passed=not outside, limit=f"{_iso(earliest)}..{_iso(latest)}",
                  note=", ".join(_iso(s) for s in outside[:3]))
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    if gaps:
        check.measure(f"{name}: longest gap between readings", round(max(gaps), 3), unit="s",
                      passed=max(gaps) < 2 * interval, limit=f"< {2 * interval:g} s (no interval missed)")
        check.measure(f"{name}: shortest gap between readings", round(min(gaps), 3), unit="s",
                      passed=min(gaps) > interval / 2, limit=f"> {interval / 2:g} s (no interval doubled)")


@pytest.mark.check("KZ-62-03", "manual reading: a reading requested by the operator arrives within the declared time, "
                   "stamped after the request, equal to the meter's register")
def test_manual_reading(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    limit = spec.timings.manual_read_s
    bounded_wait(dut, limit, "waiting for a manual reading")
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
    check.measure(f"{name}: manual reading arrived after", round(took, 3) if reading else
                  f"none within {took:.1f} s", unit="s" if reading else None,
                  passed=reading is not None and took <= limit, limit=f"≤ {limit:g} s (declared manual_read_s)")
    if reading is not None:
        stamped = reading.reading_time.timestamp()
        check.measure(f"{name}: manual reading stamped", reading.reading_time.isoformat(),
                      passed=stamped >= t_request - tolerance,
                      limit=f"after the request at {_iso(t_request)} (± {tolerance:g} s clock tolerance)")
        ok, why = within_bracket(reading, before, after)
        check.measure(f"{name}: manual reading value", reading.value, unit=reading.unit, passed=ok, limit=why)
    check.require()
