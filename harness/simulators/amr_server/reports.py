"""The golden server's consumption reports, their archive and analytics (docs/amr-api.yaml, operation ``reports``).

A meter's consumption over ``[from, to)`` is the value of its last reading in the period minus that of its first
(the contract's definition, so a client can compute the same from the readings it is shown). An archived report
is stored as the exact JSON text it was answered with and never written again: a later read returns it byte for
byte, an attempt to change it is refused (409).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness.quantities import UNIT_FACTORS
from harness.simulators.amr_server.store import Base, Reading, User, utc_now

if TYPE_CHECKING:
    from harness.simulators.amr_server.app import AmrApp

KINDS = {"electricity": "electricity_meter", "heat": "heat_meter"}


class ArchivedReport(Base):
    __tablename__ = "archived_reports"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    archived_at: Mapped[str] = mapped_column(String)
    archived_by: Mapped[str] = mapped_column(String)
    report: Mapped[str] = mapped_column(Text)  # the report's JSON text as first answered

    def as_dict(self) -> dict[str, object]:
        return {"id": str(self.id), "archived_at": self.archived_at, "archived_by": self.archived_by,
                "report": json.loads(self.report)}


def _period(request: Request) -> tuple[str, str] | None:
    from harness.simulators.amr_server.app import _time_param

    start, end = _time_param(request, "from"), _time_param(request, "to")
    return (start, end) if start and end and start < end else None


def _meter_consumption(session: Session, meter: str, start: str, end: str) -> dict[str, Any]:
    in_period = select(Reading).where(Reading.meter_id == meter, Reading.reading_time >= start,
                                      Reading.reading_time < end)
    first = session.scalars(in_period.order_by(Reading.reading_time).limit(1)).first()
    last = session.scalars(in_period.order_by(Reading.reading_time.desc()).limit(1)).first()
    if first is None or last is None:
        return {"meter_id": meter, "unit": None, "start": None, "end": None, "consumption": None}
    return {"meter_id": meter, "quantity": first.quantity, "unit": first.unit,
            "start": {"reading_time": first.reading_time, "value": first.value},
            "end": {"reading_time": last.reading_time, "value": last.value},
            "consumption": last.value - first.value}


def _common_unit(rows: list[dict[str, Any]]) -> str:
    """The meters' own unit where they share one, else the canonical unit of their dimension."""
    units = {r["unit"] for r in rows if r["unit"]}
    if len(units) == 1:
        return units.pop()
    return next((UNIT_FACTORS[u][0] for u in units if u in UNIT_FACTORS), "Wh")


def _in_unit(row: dict[str, Any], unit: str) -> float:
    if row["unit"] == unit:
        return float(row["consumption"])
    return float(row["consumption"]) * UNIT_FACTORS[row["unit"]][1] / UNIT_FACTORS.get(unit, (unit, 1.0))[1]


def consumption_report(session: Session, meters: list[str], kind: str, start: str, end: str) -> dict[str, Any]:
    rows = [_meter_consumption(session, m, start, end) for m in meters]
    unit = _common_unit(rows)
    total = sum(_in_unit(r, unit) for r in rows if r["consumption"] is not None)
    return {"kind": kind, "from": start, "to": end, "unit": unit, "meters": rows, "total": total}


def _days(start: str, end: str) -> list[tuple[str, str, str]]:
    """(date, day start, day end) of each UTC day overlapping [start, end), clipped to the period."""
    t0, t1 = datetime.fromisoformat(start), datetime.fromisoformat(end)
    day = t0.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    while day < t1:
        nxt = day + timedelta(days=1)
        out.append((day.date().isoformat(), max(t0, day).isoformat(timespec="microseconds"),
                    min(t1, nxt).isoformat(timespec="microseconds")))
        day = nxt
    return out


def consumption_analytics(session: Session, meters: list[str], kind: str, start: str, end: str,
                          defects: set[str]) -> dict[str, Any]:
    report = consumption_report(session, meters, kind, start, end)
    unit, rows = report["unit"], [r for r in report["meters"] if r["consumption"] is not None]
    # analytics_max_wrong: the largest register value taken for the largest consumption
    rows_for_max = ([{**r, "consumption": r["end"]["value"]} for r in rows] if "analytics_max_wrong" in defects
                    else rows)
    top = max(rows_for_max, key=lambda r: _in_unit(r, unit), default=None)
    bottom = min(rows, key=lambda r: _in_unit(r, unit), default=None)
    dynamics = [{"date": date, "consumption": consumption_report(session, meters, kind, a, b)["total"]}
                for date, a, b in _days(start, end)]
    return {"kind": kind, "from": start, "to": end, "unit": unit, "total": report["total"],
            "maximum": None if top is None else {"meter_id": top["meter_id"], "consumption": _in_unit(top, unit)},
            "minimum": None if bottom is None else {"meter_id": bottom["meter_id"],
                                                    "consumption": _in_unit(bottom, unit)},
            "dynamics": dynamics}


class ReportRoutes:
    """The ``reports`` operation's endpoints, behind the app's authentication and role matrix."""

    def __init__(self, app: AmrApp) -> None:
        self.app = app

    def scope(self, user: User, kind: str) -> list[str]:
        """The user's meters of the report's kind (a subscriber's own only, unless the seeded leak)."""
        visible = (list(self.app.poller.meters) if "subscriber_leak_via_reports" in self.app.defects
                   else self.app.visible_meters(user))
        return [m for m in visible if self.app.poller.meters[m].kind == KINDS[kind]]

    def _parse(self, request: Request, kind: object) -> tuple[str, str, str] | JSONResponse:
        from harness.simulators.amr_server.app import _error

        if kind not in KINDS:
            return _error(404, f"no report of kind {kind!r} ({', '.join(KINDS)})")
        period = _period(request)
        if period is None:
            return _error(400, "from and to: ISO 8601 times, from before to")
        return str(kind), *period

    async def report(self, request: Request, user: User, session: Session) -> Response:
        parsed = self._parse(request, request.path_params["kind"])
        if isinstance(parsed, JSONResponse):
            return parsed
        kind, start, end = parsed
        return JSONResponse(consumption_report(session, self.scope(user, kind), kind, start, end))

    async def analytics(self, request: Request, user: User, session: Session) -> Response:
        parsed = self._parse(request, request.path_params["kind"])
        if isinstance(parsed, JSONResponse):
            return parsed
        kind, start, end = parsed
        return JSONResponse(consumption_analytics(session, self.scope(user, kind), kind, start, end,
                                                  self.app.defects))

    async def archive(self, request: Request, user: User, session: Session) -> Response:
        from harness.simulators.amr_server.app import _body, _error

        if request.method == "GET":
            return JSONResponse({"archive": [{"id": str(a.id), "archived_at": a.archived_at,
                                              "archived_by": a.archived_by}
                                             for a in session.scalars(select(ArchivedReport)
                                                                      .order_by(ArchivedReport.id))]})
        body = await _body(request)
        kind, start, end = body.get("kind"), body.get("from"), body.get("to")
        if kind not in KINDS or not isinstance(start, str) or not isinstance(end, str):
            return _error(400, f"kind ({', '.join(KINDS)}), from and to")
        try:
            start, end = (datetime.fromisoformat(t).astimezone(UTC).isoformat(timespec="microseconds")
                          for t in (start, end))
        except ValueError:
            return _error(400, "from and to: ISO 8601 times")
        report = consumption_report(session, self.scope(user, kind), kind, start, end)
        entry = ArchivedReport(archived_at=utc_now(), archived_by=user.name, report=json.dumps(report))
        session.add(entry)
        session.flush()
        self.app.audit(session, user.name, "report_archived", archive=str(entry.id), kind=kind, start=start, end=end)
        session.commit()
        return JSONResponse(entry.as_dict(), status_code=201)

    async def archived(self, request: Request, user: User, session: Session) -> Response:
        from harness.simulators.amr_server.app import _body, _error

        try:
            entry = session.get(ArchivedReport, int(request.path_params["archive"]))
        except ValueError:
            entry = None
        if entry is None:
            return _error(404, "no such archived report")
        if request.method == "GET":
            answer = entry.as_dict()
            if "archived_report_recomputed" in self.app.defects:  # the archive is a query, not a record
                kept = answer["report"]
                answer["report"] = consumption_report(session, self.scope(user, kept["kind"]), kept["kind"],
                                                      kept["from"], kept["to"])
            return JSONResponse(answer)
        if "archived_report_mutable" not in self.app.defects:
            self.app.audit(session, user.name, "archive_change_refused", archive=str(entry.id))
            session.commit()
            return _error(409, "an archived report cannot be changed")
        report = (await _body(request)).get("report")
        if not isinstance(report, dict):
            return _error(400, "report: the report object")
        entry.report = json.dumps(report)
        session.commit()
        return JSONResponse(entry.as_dict())

    def routes(self, base: str, guarded: Callable[[str, Any], Callable[[Request], Awaitable[Response]]],
               ) -> list[Route]:
        return [
            Route(f"{base}/reports/{{kind}}", guarded("reports", self.report)),
            Route(f"{base}/analytics/{{kind}}", guarded("reports", self.analytics)),
            Route(f"{base}/archive", guarded("reports", self.archive), methods=["GET", "POST"]),
            Route(f"{base}/archive/{{archive}}", guarded("reports", self.archived), methods=["GET", "PUT"]),
        ]
