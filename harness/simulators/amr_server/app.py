"""The REST contract of docs/amr-api.yaml on Starlette: login, meters, readings, manual reading, CSV export,
users, corrections with confirmation, audit log. Each operation is allowed by the role matrix below."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness.simulators.amr_server.exports import MEDIA_TYPES, WRITERS, export_file
from harness.simulators.amr_server.poller import Poller
from harness.simulators.amr_server.reports import ReportRoutes
from harness.simulators.amr_server.store import (
    AuditEntry,
    Correction,
    Reading,
    User,
    hash_password,
    password_matches,
)

# The golden server's workstations (its profile, device_profiles/tek-sim-amr.yaml, declares the same matrix).
ROLES: dict[str, set[str]] = {
    "admin": {"read_meters", "read_readings", "manual_read", "export", "manage_users", "propose_correction",
              "confirm_correction", "read_audit", "reports"},
    "operator": {"read_meters", "read_readings", "manual_read", "export", "propose_correction", "reports"},
    "subscriber": {"read_meters", "read_readings", "export", "reports"},
}
Handler = Callable[[Request, User, Session], Awaitable[Response]]
STALL_EVERY, STALL_S = 20, 1.5  # api_stalls: every 20th authenticated request answered 1.5 s late


class Refusal(Exception):
    """An operation refused with its HTTP status and reason (the API answers it as JSON, a page as text)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class AmrApp:
    def __init__(self, engine: Any, poller: Poller, inactive_after_s: float, defects: set[str]) -> None:
        self.engine = engine
        self.poller = poller
        self.inactive_after_s = inactive_after_s
        self.defects = defects
        self.tokens: dict[str, str] = {}  # bearer token -> user name (logins end with the process)
        self.requests = 0  # authenticated API requests so far (api_stalls)

    # ---- plumbing -------------------------------------------------------------------------------
    def guarded(self, operation: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The handler behind authentication and the role matrix: 401 without a valid token, 403 for an
        operation the user's role may not do."""
        async def endpoint(request: Request) -> Response:
            await self.stall()
            auth = request.headers.get("authorization", "")
            token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
            with Session(self.engine, expire_on_commit=False) as session:
                user = self.user_of(session, token)
                if user is None:
                    return _error(401, "not logged in")
                if operation not in self.granted(user):
                    return _error(403, f"role {user.role} may not {operation}")
                try:
                    return await handler(request, user, session)
                except Refusal as refusal:
                    return _error(refusal.status, refusal.detail)
        return endpoint

    async def stall(self) -> None:
        """api_stalls: every STALL_EVERY-th request waits STALL_S first (the event loop serves the others meanwhile)."""
        if "api_stalls" in self.defects:
            self.requests += 1
            if self.requests % STALL_EVERY == 0:
                await asyncio.sleep(STALL_S)

    def user_of(self, session: Session, token: str) -> User | None:
        """The live user a login token (bearer header or workstation cookie) belongs to."""
        name = self.tokens.get(token) if token else None
        user = session.get(User, name) if name else None
        if user is None or (user.deleted and "deleted_user_still_logs_in" not in self.defects):
            return None
        return user

    def granted(self, user: User) -> set[str]:
        return ROLES.get(user.role, set()) | (
            {"manage_users"} if user.role == "operator" and "operator_manages_users" in self.defects else set())

    def audit(self, session: Session, user: str, action: str, **details: object) -> None:
        session.add(AuditEntry(time=self.poller.clock.iso(self.poller.clock.now()), user=user, action=action,
                               details=details))  # in the server's clock, as its readings

    def visible_meters(self, user: User) -> list[str]:
        if user.role == "subscriber" and "subscriber_sees_all_meters" not in self.defects:
            return [m for m in self.poller.meters if m in (user.meters or [])]
        return list(self.poller.meters)

    # ---- endpoints ------------------------------------------------------------------------------
    # ---- operations the API and the workstation pages (pages.py) share ------------------------------
    def health_status(self) -> dict[str, object]:
        faults = sum(1 for m in self.poller.meters.values() if self.poller.communication(m)["status"] == "fault")
        return {"status": "ok", "meters": len(self.poller.meters), "meters_in_fault": faults,
                "polls": self.poller.polls}

    def meter_status(self, meter: str) -> dict[str, object]:
        return {"id": meter, "status": "active" if self.poller.active(self.poller.meters[meter],
                                                                       self.inactive_after_s) else "inactive",
                "last_reading_time": self.poller.last_reading_time(meter),
                "communication": self.poller.communication(self.poller.meters[meter])}

    def authenticate(self, name: str, password: str) -> str | None:
        """A new login token for the right password of a live user (audited either way); None when refused."""
        with Session(self.engine) as session:
            user = session.get(User, name)
            live = user is not None and (not user.deleted or "deleted_user_still_logs_in" in self.defects)
            if not live or not password_matches(password, user.password_hash):  # type: ignore[union-attr]
                self.audit(session, name, "login_refused")
                session.commit()
                return None
            self.audit(session, name, "login")
            session.commit()
        token = secrets.token_urlsafe(24)
        self.tokens[token] = name
        return token

    def add_user(self, session: Session, actor: User, name: object, role: object, password: object,
                 meters: object) -> None:
        if not (isinstance(name, str) and name and role in ROLES and isinstance(password, str) and password
                and isinstance(meters, list) and all(isinstance(m, str) for m in meters)):
            raise Refusal(400, f"name, role (one of {', '.join(ROLES)}), password and meters (a list of ids)")
        existing = session.get(User, name)
        if existing is not None and not existing.deleted:
            raise Refusal(409, f"user {name} exists")
        if existing is not None:
            session.delete(existing)
            session.flush()
        session.add(User(name=name, role=role, password_hash=hash_password(password), meters=meters))
        self.audit(session, actor.name, "user_added", name=name, role=role, meters=meters)
        session.commit()

    def remove_user(self, session: Session, actor: User, name: str) -> None:
        target = session.get(User, name)
        if target is None or target.deleted:
            raise Refusal(404, "no such user")
        target.deleted = True
        self.tokens = {t: n for t, n in self.tokens.items() if n != target.name or
                       "deleted_user_still_logs_in" in self.defects}
        self.audit(session, actor.name, "user_deleted", name=target.name)
        session.commit()

    def propose_correction(self, session: Session, user: User, reading_id: object, value: object,
                           reason: object) -> Correction:
        try:
            reading = session.get(Reading, int(reading_id))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            reading = None
        if not isinstance(value, int | float) or not isinstance(reason, str) or not reason:
            raise Refusal(400, "reading_id of a stored reading, new_value (a number) and a reason")
        if reading is None or reading.meter_id not in self.visible_meters(user):
            raise Refusal(404, "no such reading")
        correction = Correction(reading_id=reading.id, status="proposed", old_value=reading.value,
                                new_value=float(value), reason=reason, proposed_by=user.name)
        session.add(correction)
        if "correction_without_confirmation" in self.defects:
            reading.original_value, reading.value = reading.value, float(value)
        session.flush()
        if "correction_not_audited" not in self.defects:
            self.audit(session, user.name, "correction_proposed", correction=str(correction.id),
                       reading=str(reading.id), old_value=correction.old_value, new_value=correction.new_value,
                       reason=reason)
        session.commit()
        return correction

    async def health(self, request: Request) -> Response:
        return JSONResponse(self.health_status())

    async def login(self, request: Request) -> Response:
        body = await _body(request)
        name, password = body.get("user"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            return _error(400, "user and password are strings")
        token = self.authenticate(name, password)
        if token is None:
            return _error(401, "wrong user or password")
        return JSONResponse({"token": token})

    async def logout(self, request: Request) -> Response:
        self.tokens.pop(request.headers.get("authorization", "").removeprefix("Bearer ").strip(), None)
        return Response(status_code=204)

    async def meters(self, request: Request, user: User, session: Session) -> Response:
        return JSONResponse({"meters": [self.meter_status(m) for m in self.visible_meters(user)]})

    async def readings(self, request: Request, user: User, session: Session) -> Response:
        meter = request.path_params["meter"]
        if meter not in self.visible_meters(user):
            return _error(404 if meter not in self.poller.meters else 403, f"meter {meter}")
        query = select(Reading).where(Reading.meter_id == meter).order_by(Reading.reading_time)
        since = _time_param(request, "since")
        if since is not None:
            query = query.where(Reading.reading_time >= since)
        return JSONResponse({"readings": [r.as_dict() for r in session.scalars(query)]})

    async def reading(self, request: Request, user: User, session: Session) -> Response:
        try:
            reading = session.get(Reading, int(request.path_params["reading"]))
        except ValueError:
            reading = None
        if reading is None or reading.meter_id not in self.visible_meters(user):
            return _error(404, "no such reading")
        return JSONResponse(reading.as_dict())

    async def manual_read(self, request: Request, user: User, session: Session) -> Response:
        meter = request.path_params["meter"]
        if meter not in self.visible_meters(user):
            return _error(404, f"meter {meter}")
        self.audit(session, user.name, "manual_read", meter=meter)
        session.commit()
        if "manual_read_ignored" not in self.defects:
            self.poller.request_manual(self.poller.meters[meter])
        return JSONResponse({"requested_at": self.poller.clock.iso(self.poller.clock.now())}, status_code=202)

    async def export(self, request: Request, user: User, session: Session) -> Response:
        fmt = request.query_params.get("format", "")
        if fmt not in WRITERS:
            return _error(400, f"format: one of {', '.join(WRITERS)}")
        start, end = _time_param(request, "from"), _time_param(request, "to")
        scope = list(self.poller.meters) if "subscriber_leak_via_export" in self.defects else self.visible_meters(user)
        query = select(Reading).where(Reading.meter_id.in_(scope)).order_by(Reading.reading_time)
        if start:
            query = query.where(Reading.reading_time >= start)
        if end:
            query = query.where(Reading.reading_time < end)
        rows = list(session.scalars(query))
        if "export_drops_last_row" in self.defects and rows:
            rows = rows[:-1]
        return Response(export_file(fmt, rows), media_type=MEDIA_TYPES[fmt])

    async def users(self, request: Request, user: User, session: Session) -> Response:
        if request.method == "GET":
            return JSONResponse({"users": [u.as_dict() for u in session.scalars(select(User).order_by(User.name))
                                           if not u.deleted]})
        body = await _body(request)
        name, role, meters = body.get("name"), body.get("role"), body.get("meters", [])
        self.add_user(session, user, name, role, body.get("password"), meters)
        return JSONResponse({"name": name, "role": role, "meters": meters}, status_code=201)

    async def delete_user(self, request: Request, user: User, session: Session) -> Response:
        self.remove_user(session, user, request.path_params["name"])
        return Response(status_code=204)

    async def propose(self, request: Request, user: User, session: Session) -> Response:
        body = await _body(request)
        correction = self.propose_correction(session, user, body.get("reading_id", ""), body.get("new_value"),
                                             body.get("reason"))
        return JSONResponse(correction.as_dict(), status_code=201)

    async def confirm(self, request: Request, user: User, session: Session) -> Response:
        try:
            correction = session.get(Correction, int(request.path_params["correction"]))
        except ValueError:
            correction = None
        if correction is None:
            return _error(404, "no such correction")
        if correction.status != "proposed":
            return _error(409, f"correction is {correction.status}")
        if correction.proposed_by == user.name:
            return _error(403, "a correction is confirmed by somebody other than its proposer")
        reading = session.get(Reading, correction.reading_id)
        assert reading is not None
        if reading.original_value is None:
            reading.original_value = correction.old_value
        reading.value = correction.new_value
        correction.status, correction.confirmed_by = "confirmed", user.name
        if "correction_not_audited" not in self.defects:
            self.audit(session, user.name, "correction_confirmed", correction=str(correction.id),
                       reading=str(reading.id), proposed_by=correction.proposed_by, old_value=correction.old_value,
                       new_value=correction.new_value, reason=correction.reason)
        session.commit()
        return JSONResponse(correction.as_dict())

    async def audit_log(self, request: Request, user: User, session: Session) -> Response:
        return JSONResponse({"entries": [e.as_dict() for e in session.scalars(select(AuditEntry)
                                                                              .order_by(AuditEntry.id))]})

    def starlette(self, base_path: str) -> Starlette:
        from harness.simulators.amr_server.pages import workstation_routes  # pages build on this module

        b = base_path.rstrip("/")
        g = self.guarded
        return Starlette(routes=[
            *workstation_routes(self),  # the server-rendered pages of the three roles, under /ui
            Route(f"{b}/health", self.health),
            Route(f"{b}/login", self.login, methods=["POST"]),
            Route(f"{b}/logout", self.logout, methods=["POST"]),
            Route(f"{b}/meters", g("read_meters", self.meters)),
            Route(f"{b}/meters/{{meter}}/readings", g("read_readings", self.readings)),
            Route(f"{b}/meters/{{meter}}/read", g("manual_read", self.manual_read), methods=["POST"]),
            Route(f"{b}/readings/{{reading}}", g("read_readings", self.reading)),
            Route(f"{b}/export", g("export", self.export)),
            Route(f"{b}/users", g("manage_users", self.users), methods=["GET", "POST"]),
            Route(f"{b}/users/{{name}}", g("manage_users", self.delete_user), methods=["DELETE"]),
            Route(f"{b}/corrections", g("propose_correction", self.propose), methods=["POST"]),
            Route(f"{b}/corrections/{{correction}}/confirm", g("confirm_correction", self.confirm), methods=["POST"]),
            Route(f"{b}/audit", g("read_audit", self.audit_log)),
            *ReportRoutes(self).routes(b, g),
        ])


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _time_param(request: Request, name: str) -> str | None:
    """A time query parameter as the stored text form (ISO 8601 UTC), or None when absent or unreadable."""
    from datetime import UTC

    text = request.query_params.get(name)
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace(" ", "+"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")
