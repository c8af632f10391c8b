"""cl. 62 export to standard formats: each declared format (CSV per RFC 4180, XLSX, IEC 61968-9 MeterReadings XML),
parsed by the harness with a real parser, holds exactly the readings of the period the server lists through its
API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harness.config.amr import ExportFormat
from harness.conformance.amr.export_rows import PARSED_AS, read_export
from harness.conformance.amr.field_truth import admin, amr_spec, bounded_wait, field_meters, require_declared, wait_for
from harness.quantities import UNIT_FACTORS
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("amr_server")

PERIOD_INTERVALS = 3  # the exported period spans this many polling intervals


def _history(session, meters) -> tuple[float, float] | None:
    """(earliest, latest) reading time the server shows over the field, as POSIX seconds; None before any."""
    stamps = [r.reading_time.timestamp() for name in meters for r in session.readings(name)]
    return (min(stamps), max(stamps)) if stamps else None


def _key(meter: str, stamp: datetime, value: float, unit: str) -> tuple[str, float, float | str]:
    """A reading as the harness compares it across formats: meter, time to the millisecond and the value in the
    canonical unit of its dimension (to 12 significant digits: a file may state kWh where the API says Wh)."""
    known = UNIT_FACTORS.get(unit)
    return meter, round(stamp.timestamp(), 3), f"{value * known[1]:.12g} {known[0]}" if known else f"{value!r} {unit}"


def _judge_file(check, fmt: ExportFormat, data: bytes, expected: set, period: str) -> None:
    """One export file, parsed with the real parser of its format: well-formed, and exactly the period's readings."""
    rows, problems = read_export(fmt.value, data)
    got = {_key(r.meter_id, r.reading_time, r.value, r.unit) for r in rows}
    check.measure(Msg("{fmt} export well-formed", fmt=fmt.value), Msg.joined("; ", problems[:3]) if problems else
                  PARSED_AS[fmt.value], passed=not problems, limit=PARSED_AS[fmt.value])
    missing, extra = expected - got, got - expected
    check.measure(Msg("{fmt} export of {period}", fmt=fmt.value, period=period),
                  Msg("{got} readings; {missing} missing, {extra} not in the period", got=len(got),
                      missing=len(missing), extra=len(extra)),
                  passed=bool(expected) and not missing and not extra,
                  limit=Msg("exactly the {n} readings the API lists for the period", n=len(expected)),
                  note=Msg.joined("; ", (Msg("missing {meter} at {time}", meter=m[0],
                                             time=datetime.fromtimestamp(m[1], UTC).isoformat())
                                         for m in sorted(missing)[:3])))


@pytest.mark.check("KZ-62-04", "export: each declared standard format (CSV per RFC 4180, XLSX, IEC 61968-9 "
                   "MeterReadings XML) holds exactly the readings of the period")
def test_export(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    require_declared(check, spec.export_formats, Msg("export formats declared"),
                     Msg("at least one standard format (cl. 62: export to standard formats)"))
    interval = spec.timings.poll_interval_s
    session = admin(dut)
    try:
        # The period is judged in the server's own clock: it ends an interval before the latest reading the server
        # shows, so everything stamped in it has long been stored, whatever the offset between the two clocks.
        span = (PERIOD_INTERVALS + 1) * interval
        # (half an interval short of the span: readings an interval apart, stamped when each answer came)
        history, _ = wait_for(lambda: h if (h := _history(session, meters)) and h[1] - h[0] >= span - interval / 2
                              else None,
                              bounded_wait(dut, span + 2 * interval, Msg("letting readings accumulate for an export")),
                              dut)
        if history is None:
            raise Inconclusive(Msg("the server did not show {span:g} s of readings within {wait:g} s", span=span,
                                      wait=span + 2 * interval))
        end = datetime.fromtimestamp(history[1] - interval, UTC)
        start = end - timedelta(seconds=interval * PERIOD_INTERVALS)
        expected = {_key(r.meter_id, r.reading_time, r.value, r.unit) for name in meters
                    for r in session.readings(name, since=start) if start <= r.reading_time < end}
        period = f"{start.isoformat(timespec='seconds')}..{end.isoformat(timespec='seconds')}"
        for fmt in spec.export_formats:
            _judge_file(check, fmt, session.export(fmt.value, start, end), expected, period)
    finally:
        session.close()
    check.require()
