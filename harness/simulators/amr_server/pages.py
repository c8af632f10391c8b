"""The golden AMR server's workstations: server-rendered pages for the administrator, the operator and the
subscriber, under ``/ui``.

A person logs in with a form through the same accounts, password check and login tokens as the REST API
(``AmrApp.authenticate``); the token rides in an HttpOnly, SameSite=Strict cookie, and every form carries a
token derived from it (no other site can post to a workstation). Each page belongs to one role: any other
role is refused it (403), and what a page lets a person do goes through the same operations and the same
role × operation matrix as the API, so a seeded defect shows on the pages as it does in the API. Nothing is
loaded from elsewhere: the subscriber's chart is an inline SVG drawn here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from harness.simulators.amr_server.app import ROLES, AmrApp, Handler, Refusal
from harness.simulators.amr_server.chart import consumption_chart
from harness.simulators.amr_server.store import AuditEntry, Correction, Reading, User

COOKIE = "amr_workstation"
PREFIX = "/ui"
WORKSTATIONS = ("admin", "operator", "subscriber")  # each role's own page, /ui/<role>
RECENT = 20  # rows of the operator's and the administrator's recent lists
CHART_READINGS = 2000  # a subscriber's chart is drawn from at most this many latest readings per meter

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
PageHandler = Callable[[Request, User, Session, dict[str, str]], Awaitable[Response]]


def workstation_routes(app: AmrApp) -> list[BaseRoute]:
    return Workstations(app).routes()


class Workstations:
    def __init__(self, app: AmrApp) -> None:
        self.app = app
        self._secret = secrets.token_bytes(32)  # form tokens die with the process, as the logins do

    # ---- plumbing -------------------------------------------------------------------------------
    def form_token(self, login: str) -> str:
        return hmac.new(self._secret, login.encode(), hashlib.sha256).hexdigest()

    def page(self, role: str, handler: PageHandler, operation: str | None = None
             ) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` for a logged-in user of ``role`` only: to the login page without a login, 403 for another
        role (or an operation the role may not do); a form's post must carry its form token."""
        async def endpoint(request: Request) -> Response:
            login = request.cookies.get(COOKIE, "")
            with Session(self.app.engine, expire_on_commit=False) as session:
                user = self.app.user_of(session, login)
                if user is None:
                    if request.method == "GET":
                        return RedirectResponse(f"{PREFIX}/login", status_code=303)
                    return self.refused(request, None, 401, "not logged in")
                if user.role != role:
                    return self.refused(request, user, 403, f"this is the {role} workstation; "
                                        f"{user.name} is a {user.role}")
                if operation is not None and operation not in self.app.granted(user):
                    return self.refused(request, user, 403, f"role {user.role} may not {operation}")
                form: dict[str, str] = {}
                if request.method == "POST":
                    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace"),
                                                         keep_blank_values=True).items()}
                    if not hmac.compare_digest(form.get("form_token", ""), self.form_token(login)):
                        return self.refused(request, user, 403, "the form did not come from this workstation")
                return await handler(request, user, session, form)
        return endpoint

    def render(self, request: Request, name: str, user: User | None, status: int = 200, **context: Any) -> Response:
        login = request.cookies.get(COOKIE, "")
        return templates.TemplateResponse(request, name, {
            "user": user, "form_token": self.form_token(login) if login else "", "prefix": PREFIX,
            "note": request.query_params.get("note", ""), "error": request.query_params.get("error", ""),
            **context}, status_code=status)

    def refused(self, request: Request, user: User | None, status: int, reason: str) -> Response:
        return self.render(request, "refused.html", user, status, reason=reason)

    @staticmethod
    def back(role: str, **message: str) -> Response:
        return RedirectResponse(f"{PREFIX}/{role}?{urlencode(message)}", status_code=303)

    async def through_api(self, handler: Handler, request: Request, user: User, session: Session, role: str,
                          done: Callable[[dict[str, Any]], str]) -> Response:
        """Do what a form asks with the API's own handler (the page's path parameters are named as the API's), and
        back to the role's page with ``done(answer)`` or the API's refusal."""
        answer = await handler(request, user, session)
        body = json.loads(bytes(answer.body))
        if answer.status_code >= 400:
            return self.back(role, error=str(body.get("detail")))
        return self.back(role, note=done(body))

    # ---- login ----------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        with Session(self.app.engine) as session:
            user = self.app.user_of(session, request.cookies.get(COOKIE, ""))
            target = f"{PREFIX}/{user.role}" if user is not None and user.role in WORKSTATIONS else f"{PREFIX}/login"
        return RedirectResponse(target, status_code=303)

    async def login_page(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "login.html", None)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = self.app.authenticate(form.get("user", [""])[0], form.get("password", [""])[0])
        if token is None:
            return self.render(request, "login.html", None, 401, error="wrong user or password")
        response = RedirectResponse(f"{PREFIX}/", status_code=303)
        response.set_cookie(COOKIE, token, path=PREFIX, httponly=True, samesite="strict")
        return response

    async def logout(self, request: Request) -> Response:
        self.app.tokens.pop(request.cookies.get(COOKIE, ""), None)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    # ---- administrator: users and rights, health, diagnostics, confirmations, the audit trail -------
    async def admin(self, request: Request, user: User, session: Session, form: dict[str, str]) -> Response:
        users = [u for u in session.scalars(select(User).order_by(User.name)) if not u.deleted]
        audit = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(RECENT)))
        pending = list(session.scalars(select(Correction).where(Correction.status == "proposed")
                                       .order_by(Correction.id)))
        return self.render(request, "admin.html", user, users=users, roles=ROLES,
                           rights={u.name: sorted(self.app.granted(u)) for u in users},
                           health=self.app.health_status(), database=self.app.engine.dialect.name,
                           meters=[self.app.meter_status(m) for m in self.app.poller.meters], audit=audit,
                           pending=pending)

    async def add_user(self, request: Request, user: User, session: Session, form: dict[str, str]) -> Response:
        meters = [m.strip() for m in form.get("meters", "").split(",") if m.strip()]
        try:
            self.app.add_user(session, user, form.get("name", "").strip(), form.get("role"), form.get("password"),
                              meters)
        except Refusal as refusal:
            return self.back("admin", error=refusal.detail)
        return self.back("admin", note=f"user {form['name'].strip()} added")

    async def delete_user(self, request: Request, user: User, session: Session, form: dict[str, str]) -> Response:
        name = request.path_params["name"]
        try:
            self.app.remove_user(session, user, name)
        except Refusal as refusal:
            return self.back("admin", error=refusal.detail)
        return self.back("admin", note=f"user {name} deleted")

    async def confirm(self, request: Request, user: User, session: Session, form: dict[str, str]) -> Response:
        return await self.through_api(self.app.confirm, request, user, session, "admin",
                                      lambda a: f"correction {a['id']} confirmed: reading {a['reading_id']} is now "
                                      f"{a['new_value']} (was {a['old_value']})")

    # ---- operator: meters, their status and diagnostics, manual reading, corrections -------------
    async def operator(self, request: Request, user: User, session: Session, form: dict[str, str]) -> Response:
        meters = []
        for m in self.app.visible_meters(user):
            latest = session.scalars(select(Reading).where(Reading.meter_id == m)
                                     .order_by(Reading.reading_time.desc()).limit(1)).first()
            meters.append({**self.app.meter_status(m), "latest": latest})
        visible = self.app.visible_meters(user)
        readings = list(session.scalars(select(Reading).where(Reading.meter_id.in_(visible))
                                        .order_by(Reading.id.desc()).limit(RECENT)))
        corrections = list(session.scalars(select(Correction).order_by(Correction.id.desc()).limit(RECENT)))
        return self.render(request, "operator.html", user, meters=meters, readings=readings,
                           corrections=corrections)

    async def manual_read(self, request: Request, user: User, session: Session, form: dict[str, str]) -> Response:
        meter = request.path_params["meter"]
        return await self.through_api(self.app.manual_read, request, user, session, "operator",
                                      lambda a: f"reading of {meter} requested at {a['requested_at']}")

    async def propose(self, request: Request, user: User, session: Session, form: dict[str, str]) -> Response:
        try:
            value: object = float(form.get("new_value", ""))
        except ValueError:
            value = None
        try:
            correction = self.app.propose_correction(session, user, form.get("reading_id", ""), value,
                                                     form.get("reason", "").strip())
        except Refusal as refusal:
            return self.back("operator", error=refusal.detail)
        return self.back("operator", note=f"correction {correction.id} proposed: it changes nothing until the "
                         "administrator confirms it")

    # ---- subscriber: its own meters and its consumption ------------------------------------------
    async def subscriber(self, request: Request, user: User, session: Session, form: dict[str, str]) -> Response:
        charts = []
        for m in self.app.visible_meters(user):
            latest_first = list(session.scalars(select(Reading).where(Reading.meter_id == m)
                                                .order_by(Reading.reading_time.desc()).limit(CHART_READINGS)))
            unit = latest_first[0].unit if latest_first else self.app.poller.meters[m].unit
            charts.append(consumption_chart(m, unit, [(r.reading_time, r.value) for r in reversed(latest_first)]))
        return self.render(request, "subscriber.html", user, charts=charts,
                           meters=[self.app.meter_status(m) for m in self.app.visible_meters(user)])

    def routes(self) -> list[BaseRoute]:
        p = self.page
        return [
            Route(f"{PREFIX}/", self.home),
            Route(f"{PREFIX}/login", self.login_page, methods=["GET", "POST"]),
            Route(f"{PREFIX}/logout", self.logout, methods=["POST"]),
            Route(f"{PREFIX}/admin", p("admin", self.admin)),
            Route(f"{PREFIX}/admin/users", p("admin", self.add_user, "manage_users"), methods=["POST"]),
            Route(f"{PREFIX}/admin/users/{{name}}/delete", p("admin", self.delete_user, "manage_users"),
                  methods=["POST"]),
            Route(f"{PREFIX}/admin/corrections/{{correction}}/confirm", p("admin", self.confirm, "confirm_correction"),
                  methods=["POST"]),
            Route(f"{PREFIX}/operator", p("operator", self.operator)),
            Route(f"{PREFIX}/operator/meters/{{meter}}/read", p("operator", self.manual_read, "manual_read"),
                  methods=["POST"]),
            Route(f"{PREFIX}/operator/corrections", p("operator", self.propose, "propose_correction"),
                  methods=["POST"]),
            Route(f"{PREFIX}/subscriber", p("subscriber", self.subscriber)),
        ]
