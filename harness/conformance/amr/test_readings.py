"""cl. 62 automatic and manual reading: readings at the declared interval — over a simulated day where the server and
its field obey simulated time, over a few intervals of wall time on a real server — each with its update time, each a
value the meter's register showed at that time (the harness's own reads bracket it, within one register step), no
interval missed or doubled; a manual reading arrives within the declared time, stamped after the request."""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from datetime import UTC, datetime

import pytest

from harness.conformance.amr.field_truth import (
    POLL_S,
    SAMPLES_PER_INTERVAL,
    Truth,
    admin,
    amr_spec,
    bounded_wait,
    canonical,
    field_meters,
    sample_field,
    truth,
    wait_for,
    within_bracket,
)
from harness.devices.amr.api import AmrReading
from harness.reporting.texts import Msg

pytestmark = pytest.mark.dut_kind("amr_server")

DAY_S = 86400.0  # the span watched where time can be advanced (cl. 62: no interval missed or doubled in a day)
INTERVALS_OBSERVED = 4  # automatic readings watched per meter in wall time (a real server)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def bracket(samples: list[Truth], stamp: float, tolerance: float) -> tuple[Truth, Truth] | None:
    """Of the harness's reads of a meter (device time), the last at or before ``stamp - tolerance`` and the first at
    or after ``stamp + tolerance`` (the clocks may differ by the rig's tolerance), or the first and last read where
    the observation is shorter; None when the stamp is outside the reads (± the tolerance)."""
    times = [s.t for s in samples]
    if not samples or not times[0] - tolerance <= stamp <= times[-1] + tolerance:
        return None
    low, high = bisect_right(times, stamp - tolerance) - 1, bisect_left(times, stamp + tolerance)
    return samples[max(low, 0)], samples[min(high, len(samples) - 1)]


@pytest.mark.check("KZ-62-02", "automatic reading: every field meter read at the declared interval (none missed or "
                   "doubled), each reading stamped with its time and equal to the meter's register at that time")
def test_automatic_reading(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    interval = spec.timings.poll_interval_s
    if dut.time.fast:
        window, step = DAY_S, interval / SAMPLES_PER_INTERVAL
    else:
        window = bounded_wait(dut, INTERVALS_OBSERVED * interval + interval, Msg("watching automatic readings"))
        step = POLL_S
    tolerance = dut.timing.clock_tolerance_s
    session = admin(dut)
    try:
        known = {name: {r.reading_id for r in session.readings(name)} for name in meters}
        t_start = dut.time.device_now()
        samples = sample_field(dut, window, step)
        new = {name: [r for r in session.readings(name) if r.reading_id not in known[name]] for name in meters}
        t_end = dut.time.device_now()
    finally:
        session.close()
    deviations: dict[str, list[tuple[float, float]]] = {}
    for name in meters:
        auto = sorted((r for r in new[name] if r.source == "auto"), key=lambda r: r.reading_time)
        expected = int(window / interval)
        check.measure(Msg("{name}: automatic readings in {window:g} s", name=name, window=window), len(auto),
                      passed=expected - 1 <= len(auto) <= expected + 1,
                      limit=Msg("{expected} ± 1 at a {interval:g} s interval", expected=expected, interval=interval))
        _judge_times(check, name, auto, interval, t_start - tolerance, t_end + tolerance)
        wrong = []
        for r in auto:
            around = bracket(samples[name], r.reading_time.timestamp(), tolerance)
            ok, why = within_bracket(r, *around) if around else (False, Msg("no read of the harness around it"))
            if not ok:
                wrong.append((r, why))
            if around and (got := canonical(r)) is not None:
                step = max(around[0].resolution, around[1].resolution) or 1.0
                deviations.setdefault(name, []).append(((r.reading_time.timestamp() - t_start) / 3600.0,
                                                        (got[0] - (around[0].value + around[1].value) / 2) / step))
        check.measure(Msg("{name}: readings equal to the meter's register", name=name),
                      Msg("{right} of {n}", right=len(auto) - len(wrong), n=len(auto)),
                      passed=bool(auto) and not wrong,
                      limit=Msg("each within the harness's reads of {name} around its time (± {tolerance:g} s), "
                                "± one register step; {n} reads", name=name, tolerance=tolerance,
                                n=len(samples[name])),
                      note=Msg.joined("; ", (Msg("{value:.12g} {unit} at {time} not in {why}", value=r.value,
                                                 unit=r.unit, time=r.reading_time.isoformat(), why=why)
                                             for r, why in wrong[:3])))
    check.chart(Msg("Each reading against the harness's reads of its meter at its time"), deviations, kind="scatter",
                x_label=Msg("device time, h from the start"),
                y_label=Msg("reading − the harness's reads around it, register steps"))
    check.require()


def _judge_times(check, name: str, readings: list[AmrReading], interval: float, earliest: float,
                 latest: float) -> None:
    """Each reading stamped inside the observation (± the rig's clock tolerance); consecutive stamps an interval
    apart: a gap of one and a half intervals is a missed reading, two stamps within half an interval a doubled one."""
    stamps = [r.reading_time.timestamp() for r in readings]
    outside = [s for s in stamps if not earliest <= s <= latest]
    check.measure(Msg("{name}: reading times inside the observation", name=name),
                  Msg("{right} of {n}", right=len(stamps) - len(outside), n=len(stamps)), passed=not outside,
                  limit=f"{_iso(earliest)}..{_iso(latest)}",
                  note=", ".join(_iso(s) for s in outside[:3]))
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    if gaps:
        check.measure(Msg("{name}: longest gap between readings", name=name), round(max(gaps), 3), unit="s",
                      passed=max(gaps) < 1.5 * interval,
                      limit=Msg("< {limit:g} s (no interval missed)", limit=1.5 * interval))
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
        t_request = dut.time.device_now()
        session.request_reading(name)

        def manual() -> AmrReading | None:
            return next((r for r in session.readings(name) if r.reading_id not in known and r.source == "manual"),
                        None)

        reading, took = wait_for(manual, limit, dut)
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
