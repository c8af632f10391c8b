"""AMR reports, their archive, analytics and the standard export formats (issue 15): the seeded defects of
KZ-62-07, KZ-62-08 and the reports part of KZ-18-01 each fail their check (one certify run seeds all three: they
break independent endpoints, and each failure is pinned to its own measurement); the export parsers hold to their
standards; answers outside the contract are named, never a traceback. The golden server passes them in
tests/test_amr.py's one run of the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.conformance.amr.export_rows import METER_READINGS_NS, exported_meters, read_export
from harness.devices.amr.api import AmrContractViolation
from harness.devices.amr.rest import RestAmrServer
from harness.simulators.amr_server.defects import AMR_DEFECTS
from harness.simulators.amr_server.exports import export_file
from harness.simulators.amr_server.store import Reading
from tests.conftest import checks_of, run_cli, verdicts_of

# Seeded together in one run (tests/test_amr.py leaves them out of its one-defect-per-run parametrization): each
# check's failing measurement below shows which defect it caught.
TOGETHER = {"archived_report_mutable": "an attempt to change the archived report",
            "archived_report_recomputed": "read again: SHA-256",
            "analytics_max_wrong": "maximum",
            "subscriber_leak_via_reports": "meters in the subscriber's electricity reports and analytics"}


@pytest.mark.slow  # a server, two field meters and a report period of the harness's own reads (~20 s)
def test_report_defects_each_fail_their_check(tmp_path: Path) -> None:
    from tests.test_amr import _small_rig

    rig = _small_rig(tmp_path, ("em1", "em2"))
    out = tmp_path / "out"
    defects = [AMR_DEFECTS[name] for name in TOGETHER]
    args = [a for d in defects for a in ("--defect", d.name, "--check", d.expect)]
    res = run_cli("certify", str(rig), "--out", str(out), "--reruns", "0", *args)
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    checks = checks_of(out)
    clauses = verdicts_of(out)["duts"]["amr"]["clauses"]
    for defect in defects:
        record = checks[defect.expect]
        failed = [m["name"] for m in record["measurements"] if not m["passed"]]
        assert record["verdict"] == "FAIL", (defect.name, record.get("reason"), failed)
        assert any(name.endswith(TOGETHER[defect.name]) for name in failed), (defect.name, failed)
        assert clauses[defect.clause]["verdict"] == "FAIL", (defect.name, clauses[defect.clause])


def _readings() -> list[Reading]:
    return [Reading(id=1, meter_id="em1", quantity="active_import_total", value=1234.0, unit="Wh",
                    reading_time="2026-12-07T10:00:00.123456+00:00", source="auto"),
            Reading(id=2, meter_id="hm,1", quantity="heat_energy", value=0.1234, unit="GJ",
                    reading_time="2026-12-07T10:00:01.000000+00:00", source="manual")]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "iec61968-9"])
def test_each_export_format_reads_back_with_its_real_parser(fmt: str) -> None:
    """What the golden server writes, the harness's parser of that standard reads back reading for reading."""
    rows, problems = read_export(fmt, export_file(fmt, _readings()))
    assert problems == []
    assert [(r.meter_id, r.value, r.unit, r.reading_time) for r in rows] == [
        ("em1", 1234.0, "Wh", datetime(2026, 12, 7, 10, 0, 0, 123456, UTC)),
        ("hm,1", 0.1234, "GJ", datetime(2026, 12, 7, 10, 0, 1, tzinfo=UTC))]
    assert exported_meters(export_file(fmt, _readings()), fmt) == {"em1", "hm,1"}


def test_meter_readings_xml_is_held_to_the_iec_61968_9_structure() -> None:
    good = export_file("iec61968-9", _readings())
    _, problems = read_export("iec61968-9", good.replace(METER_READINGS_NS.encode(), b"urn:someone-else"))
    assert any("not MeterReadings in http://iec.ch/TC57/2011/MeterReadings#" in p for p in problems)
    swapped = good.replace(b"<source>auto</source>", b"").replace(b"</value>", b"</value><source>auto</source>", 1)
    _, problems = read_export("iec61968-9", swapped)
    assert any("out of the schema's sequence" in p for p in problems), problems
    _, problems = read_export("iec61968-9", good.replace(b'.0.72.0"', b'.0.72"'))
    assert any("18-field code" in p for p in problems), problems
    _, problems = read_export("iec61968-9", good[:-20])
    assert any("not well-formed XML" in p for p in problems)


def test_xlsx_is_held_to_the_contract() -> None:
    from io import BytesIO

    from openpyxl import load_workbook

    book = load_workbook(BytesIO(export_file("xlsx", _readings())))
    book.active["D2"] = "1234"  # the value as text, not a number cell
    out = BytesIO()
    book.save(out)
    _, problems = read_export("xlsx", out.getvalue())
    assert any("value is not a number cell" in p for p in problems), problems
    _, problems = read_export("xlsx", b"PK not a workbook")
    assert any("not an XLSX workbook" in p for p in problems), problems


@pytest.fixture
def lying_server() -> Iterator[RestAmrServer]:
    from tests.test_amr import lying_server as of_test_amr

    yield from of_test_amr.__wrapped__()


def test_report_answers_outside_the_contract_are_named(lying_server: RestAmrServer) -> None:
    """The lying server answers every GET with a meter list: a report, analytics or archive without their fields,
    and no PUT at all (501) — each a contract violation naming the request and what is wrong."""
    session = lying_server.login("anyone", "anything")
    now = datetime.now(UTC)
    with pytest.raises(AmrContractViolation, match="GET /reports/electricity: the answer has no field 'meter_id'"):
        session.report("electricity", now, now)
    with pytest.raises(AmrContractViolation, match="GET /analytics/heat: the answer has no field 'kind'"):
        session.analytics("heat", now, now)
    with pytest.raises(AmrContractViolation, match="PUT /archive/1: status 501"):
        session.alter_archived_report("1", {})


def test_dynamics_across_midnight_equal_the_harness_computation() -> None:
    """A period over two UTC days (which a check in wall time rarely sees): the golden server's per-day series and
    the harness's own figures of each day's part agree, and one reading the register never showed is caught."""
    from sqlalchemy.orm import Session

    from harness.conformance.amr.analytics_days import days_of
    from harness.conformance.amr.consumption import SampledPeriod, total_of
    from harness.conformance.amr.field_truth import Truth
    from harness.devices.amr.api import AmrReading
    from harness.simulators.amr_server.reports import consumption_analytics
    from harness.simulators.amr_server.store import Meter, open_database

    midnight = datetime(2026, 12, 8, tzinfo=UTC).timestamp()
    stamps = [midnight + s for s in (-30, -20, -10, 10, 20, 30)]
    register = {t: 1000.0 + 2 * (t - midnight) for t in stamps}  # 2 Wh a second
    engine = open_database("sqlite://")
    with Session(engine) as session:
        session.add(Meter(id="em1", kind="electricity_meter"))
        session.add_all(Reading(meter_id="em1", quantity="active_import_total", value=register[t], unit="Wh",
                                reading_time=datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds"),
                                source="auto") for t in stamps)
        session.commit()
        start, end = (datetime.fromtimestamp(midnight + s, UTC) for s in (-35, 35))
        answer = consumption_analytics(session, ["em1"], "electricity", start.isoformat(), end.isoformat(), set())
    samples = {"em1": [Truth(1000.0 + 2 * s, "Wh", 1.0, midnight + s) for s in range(-40, 41)]}
    period = SampledPeriod(start, end, samples, tolerance_s=0.5)
    readings = [AmrReading(str(i), "em1", "active_import_total", register[t], "Wh", datetime.fromtimestamp(t, UTC),
                           "auto") for i, t in enumerate(stamps)]
    days = days_of(start, end)
    assert [d for d, _, _ in days] == ["2026-12-07", "2026-12-08"]
    harness = {d: total_of({"em1": period.figure("em1", readings, a, b)}) for d, a, b in days}
    assert {d["date"]: d["consumption"] for d in answer["dynamics"]} == harness == {"2026-12-07": 40.0,
                                                                                   "2026-12-08": 40.0}
    assert answer["total"] == total_of({"em1": period.figure("em1", readings)}) == 120.0
    assert period.figure("em1", readings).truthful
    lying = [*readings[:-1], AmrReading("9", "em1", "active_import_total", 5000.0, "Wh",
                                        datetime.fromtimestamp(stamps[-1], UTC), "auto")]
    assert not period.figure("em1", lying).truthful
