"""The built-in AMR adapter: the REST contract of docs/amr-api.yaml over HTTP, with httpx.

Every answer is checked against the contract as it is parsed: a missing field, a wrong type or a
status the contract does not list is an ``AmrContractViolation`` naming the request and what was
wrong — the check that made the request turns it into FAIL with that reason, never a traceback.
"""

from __future__ import annotations

import contextlib
import socket
import time
from datetime import datetime
from typing import Any

from harness.devices.amr.api import (
    AmrAccessDenied,
    AmrContractViolation,
    AmrNotFound,
    AmrReading,
    AmrServer,
    AmrSession,
    AmrUser,
    ArchivedReport,
    AuditEntry,
    ConsumptionAnalytics,
    ConsumptionReport,
    Correction,
    MeterConsumption,
    MeterStatus,
)
from harness.devices.api import DeviceTimeout, DeviceUnreachable
from harness.reporting.texts import Msg


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise AmrContractViolation(Msg("{where}: the answer has no field {key!r}", where=where, key=key))
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise AmrContractViolation(Msg("{where}: field {key!r} is {type} {value!r:.60}, not {wanted}", where=where,
                                       key=key, type=type(value).__name__, value=value,
                                       wanted=getattr(kind, "__name__", kind)))
    return value


def _time(obj: Any, key: str, where: str, optional: bool = False) -> datetime | None:
    text = _field(obj, key, (str, type(None)) if optional else str, where)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise AmrContractViolation(Msg("{where}: field {key!r} = {text!r:.60} is no ISO 8601 time", where=where,
                                       key=key, text=text)) from None
    if value.tzinfo is None:
        raise AmrContractViolation(Msg("{where}: field {key!r} = {text!r:.60} has no UTC offset", where=where, key=key,
                                       text=text))
    return value


def _reading(obj: Any, where: str) -> AmrReading:
    return AmrReading(reading_id=str(_field(obj, "id", (str, int), where)),
                      meter_id=_field(obj, "meter_id", str, where), quantity=_field(obj, "quantity", str, where),
                      value=float(_field(obj, "value", (int, float), where)), unit=_field(obj, "unit", str, where),
                      reading_time=_time(obj, "reading_time", where),  # type: ignore[arg-type]
                      source=_field(obj, "source", str, where),
                      original_value=_optional_number(obj, "original_value", where))


def _communication(meter: Any, where: str) -> tuple[bool | None, str | None]:
    """The optional ``communication`` diagnostics of a meter: (link ok, last error); (None, None) when absent."""
    diag = meter.get("communication") if isinstance(meter, dict) else None
    if diag is None:
        return None, None
    status = _field(diag, "status", str, f"{where}: communication")
    if status not in ("ok", "fault"):
        raise AmrContractViolation(Msg("{where}: communication status {status!r} is neither ok nor fault", where=where,
                                       status=status))
    return status == "ok", _field(diag, "last_error", (str, type(None)), f"{where}: communication")


def _optional_number(obj: Any, key: str, where: str) -> float | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise AmrContractViolation(Msg("{where}: field {key!r} is {type}, not a number", where=where, key=key,
                                       type=type(value).__name__))
    return None if value is None else float(value)


def _correction(obj: Any, where: str) -> Correction:
    return Correction(correction_id=str(_field(obj, "id", (str, int), where)),
                      reading_id=str(_field(obj, "reading_id", (str, int), where)),
                      status=_field(obj, "status", str, where),
                      old_value=float(_field(obj, "old_value", (int, float), where)),
                      new_value=float(_field(obj, "new_value", (int, float), where)),
                      reason=_field(obj, "reason", str, where), proposed_by=_field(obj, "proposed_by", str, where),
                      confirmed_by=_field(obj, "confirmed_by", (str, type(None)), where))


def _number(obj: Any, key: str, where: str) -> float:
    return float(_field(obj, key, (int, float), where))


def _report(obj: Any, where: str) -> ConsumptionReport:
    meters = [MeterConsumption(_field(m, "meter_id", str, where), _optional_number(m, "consumption", where),
                               _field(m, "unit", (str, type(None)), where))
              for m in _field(obj, "meters", list, where)]
    return ConsumptionReport(kind=_field(obj, "kind", str, where), start=_time(obj, "from", where),  # type: ignore[arg-type]
                             end=_time(obj, "to", where), unit=_field(obj, "unit", str, where),  # type: ignore[arg-type]
                             meters=meters, total=_number(obj, "total", where), document=dict(obj))


def _archived(obj: Any, where: str) -> ArchivedReport:
    return ArchivedReport(str(_field(obj, "id", (str, int), where)),
                          _report(_field(obj, "report", dict, where), f"{where}: report"))


def _extreme(obj: Any, key: str, where: str) -> tuple[str, float] | None:
    value = _field(obj, key, (dict, type(None)), where)
    return None if value is None else (_field(value, "meter_id", str, f"{where}: {key}"),
                                       _number(value, "consumption", f"{where}: {key}"))


def _analytics(obj: Any, where: str) -> ConsumptionAnalytics:
    return ConsumptionAnalytics(kind=_field(obj, "kind", str, where), unit=_field(obj, "unit", str, where),
                                total=_number(obj, "total", where), maximum=_extreme(obj, "maximum", where),
                                minimum=_extreme(obj, "minimum", where),
                                dynamics=[(_field(d, "date", str, f"{where}: dynamics"),
                                           _number(d, "consumption", f"{where}: dynamics"))
                                          for d in _field(obj, "dynamics", list, where)])


class RestAmrServer(AmrServer):
    """An AMR server speaking the project's REST contract at ``http://host:port{base_path}``."""

    def __init__(self, name: str, profile: Any, dut: Any, timing: Any, transcript: Any,
                 endpoint: dict[str, Any]) -> None:
        import httpx  # imported only when an AMR server is used: `harness --help` stays fast

        super().__init__(name)
        self.profile = profile
        host = endpoint.get("host", "127.0.0.1")
        host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{host}:{endpoint.get('port')}{profile.amr.base_path.rstrip('/')}"
        self._timeout = httpx.Timeout(timing.request_timeout_s * (timing.retries + 1) + 2.0)
        # TCP_NODELAY, as curl sets it: without it Nagle holds a keep-alive request back until the delayed ACK of
        # a response that came in two segments (~40 ms) whenever anything relays the connection (the link proxy).
        nodelay = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._client = httpx.Client(base_url=self.base_url, timeout=self._timeout, transport=nodelay)
        self._transcript = transcript

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        """One HTTP exchange; connection problems become ``DeviceUnreachable`` / ``DeviceTimeout``."""
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        t_sent = time.time()
        try:
            answer = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            self._record(method, path, t_sent, error=type(exc).__name__)
            raise DeviceTimeout(Msg("{device}: {method} {path}: no answer ({error})", device=self.name, method=method,
                                    path=path, error=type(exc).__name__)) from None
        except httpx.TransportError as exc:
            self._record(method, path, t_sent, error=f"{type(exc).__name__}: {exc}")
            raise DeviceUnreachable(f"{self.name}: {method} {path}: {type(exc).__name__}: {exc}") from None
        self._record(method, path, t_sent, status=answer.status_code, bytes=len(answer.content))
        return answer

    def _record(self, method: str, path: str, t_sent: float, **outcome: object) -> None:
        """One exchange in the run's transcript: request line and outcome, never a body (a login's holds a
        password, a token grants access) nor a header."""
        if self._transcript is not None:
            self._transcript.record(self.name, proto="http", request=f"{method} {path}", t_sent=round(t_sent, 6),
                                    elapsed_ms=round((time.time() - t_sent) * 1000, 2), **outcome)

    def probe(self) -> None:
        answer = self.request("GET", "/health")
        if answer.status_code != 200:
            raise AmrContractViolation(Msg("{device}: GET /health answered {status_code}", device=self.name,
                                           status_code=answer.status_code))

    def health(self) -> dict[str, object]:
        body = _json(self.request("GET", "/health"), "GET /health", (200, 503))
        _field(body, "status", str, "GET /health")
        return dict(body)

    def login(self, user: str, password: str) -> RestAmrSession:
        answer = self.request("POST", "/login", json={"user": user, "password": password})
        if answer.status_code == 401:
            raise AmrAccessDenied(Msg("{device}: login of {user!r} refused (401)", device=self.name, user=user), 401)
        token = _field(_json(answer, "POST /login", (200,)), "token", str, "POST /login")
        return RestAmrSession(self, user, token)

    def close(self) -> None:
        self._client.close()


def _json(answer: Any, where: str, ok: tuple[int, ...]) -> Any:
    """The JSON body of an answer whose status the contract allows; refusals as ``AmrAccessDenied``."""
    if answer.status_code in (401, 403):
        raise AmrAccessDenied(Msg("{where}: refused ({status_code})", where=where, status_code=answer.status_code),
                              answer.status_code)
    if answer.status_code == 404:
        raise AmrNotFound(Msg("{where}: not found (404)", where=where))
    if answer.status_code not in ok:
        raise AmrContractViolation(Msg("{where}: status {status_code}, the contract allows {items} (body {text!r})",
                                       where=where, status_code=answer.status_code, items=', '.join(map(str, ok)),
                                       text=answer.text[:120]))
    if answer.status_code == 204:
        return None
    try:
        return answer.json()
    except ValueError:
        raise AmrContractViolation(Msg("{where}: the body is not JSON ({text!r})", where=where,
                                       text=answer.text[:80])) from None


class RestAmrSession(AmrSession):
    def __init__(self, server: RestAmrServer, user: str, token: str) -> None:
        self.server = server
        self.user = user
        self._token = token

    def _call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        return _json(self.server.request(method, path, self._token, **kwargs), f"{method} {path}", ok)

    def meters(self) -> list[MeterStatus]:
        where = "GET /meters"
        out = []
        for m in _field(self._call("GET", "/meters"), "meters", list, where):
            status = _field(m, "status", str, where)
            if status not in ("active", "inactive"):
                raise AmrContractViolation(Msg("{where}: status {status!r} is neither active nor inactive",
                                               where=where, status=status))
            out.append(MeterStatus(_field(m, "id", str, where), status == "active",
                                   _time(m, "last_reading_time", where, optional=True), *_communication(m, where)))
        return out

    def readings(self, meter_id: str, since: datetime | None = None) -> list[AmrReading]:
        where = f"GET /meters/{meter_id}/readings"
        params = {"since": since.isoformat()} if since else {}
        body = self._call("GET", f"/meters/{meter_id}/readings", params=params)
        return [_reading(r, where) for r in _field(body, "readings", list, where)]

    def reading(self, reading_id: str) -> AmrReading:
        return _reading(self._call("GET", f"/readings/{reading_id}"), f"GET /readings/{reading_id}")

    def request_reading(self, meter_id: str) -> None:
        self._call("POST", f"/meters/{meter_id}/read", ok=(202,))

    def export(self, fmt: str, start: datetime, end: datetime) -> bytes:
        answer = self.server.request("GET", "/export", self._token,
                                     params={"format": fmt, "from": start.isoformat(), "to": end.isoformat()})
        if answer.status_code != 200:
            _json(answer, "GET /export", (200,))  # raises what the status means
        return bytes(answer.content)

    def users(self) -> list[AmrUser]:
        where = "GET /users"
        return [AmrUser(_field(u, "name", str, where), _field(u, "role", str, where),
                        list(_field(u, "meters", list, where)))
                for u in _field(self._call("GET", "/users"), "users", list, where)]

    def add_user(self, user: AmrUser, password: str) -> None:
        self._call("POST", "/users", ok=(201,), json={"name": user.name, "role": user.role, "password": password,
                                                      "meters": user.meters})

    def delete_user(self, name: str) -> None:
        self._call("DELETE", f"/users/{name}", ok=(204,))

    def propose_correction(self, reading_id: str, new_value: float, reason: str) -> Correction:
        body = self._call("POST", "/corrections", ok=(201,),
                          json={"reading_id": reading_id, "new_value": new_value, "reason": reason})
        return _correction(body, "POST /corrections")

    def confirm_correction(self, correction_id: str) -> Correction:
        where = f"POST /corrections/{correction_id}/confirm"
        return _correction(self._call("POST", f"/corrections/{correction_id}/confirm"), where)

    def audit(self) -> list[AuditEntry]:
        where = "GET /audit"
        return [AuditEntry(_time(e, "time", where), _field(e, "user", str, where),  # type: ignore[arg-type]
                           _field(e, "action", str, where), dict(_field(e, "details", dict, where)))
                for e in _field(self._call("GET", "/audit"), "entries", list, where)]

    def report(self, kind: str, start: datetime, end: datetime) -> ConsumptionReport:
        return _report(self._call("GET", f"/reports/{kind}", params={"from": start.isoformat(), "to": end.isoformat()}),
                       f"GET /reports/{kind}")

    def archive_report(self, kind: str, start: datetime, end: datetime) -> ArchivedReport:
        body = self._call("POST", "/archive", ok=(201,),
                          json={"kind": kind, "from": start.isoformat(), "to": end.isoformat()})
        return _archived(body, "POST /archive")

    def archived_report(self, archive_id: str) -> ArchivedReport:
        return _archived(self._call("GET", f"/archive/{archive_id}"), f"GET /archive/{archive_id}")

    def alter_archived_report(self, archive_id: str, document: dict[str, object]) -> bool:
        where = f"PUT /archive/{archive_id}"
        answer = self.server.request("PUT", f"/archive/{archive_id}", self._token, json={"report": document})
        if answer.status_code in (403, 405, 409):  # the contract's refusals of a change to the archive
            return False
        _json(answer, where, (200, 204))
        return True

    def analytics(self, kind: str, start: datetime, end: datetime) -> ConsumptionAnalytics:
        body = self._call("GET", f"/analytics/{kind}", params={"from": start.isoformat(), "to": end.isoformat()})
        return _analytics(body, f"GET /analytics/{kind}")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a session that cannot log out is closed all the same
            self.server.request("POST", "/logout", self._token)
