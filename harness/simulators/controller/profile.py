"""The simulator's reading of its own profile: plain YAML, only what the simulated device needs.

The harness validates profiles with its own schema (harness/config/opcua_map.py); the simulator
reads the same file independently — two readings of one contract, so that a mistake on either
side shows up as a failing check instead of being shared silently. Errors name the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness.config.errors import ConfigError
from harness.config.extends import resolve_profile

# NodeId text: optional ns=N; or nsu=URI; then i=, s=.
_NODE = re.compile(r"^(?:(?:ns=(?P<ns>\d+)|nsu=(?P<nsu>[^;]+));)?(?:i=(?P<i>\d+)|s=(?P<s>.+))$")
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


class ProfileError(ValueError):
    """The controller simulator cannot run this profile (the message names the key)."""


@dataclass(frozen=True)
class NodeRef:
    """A node as the profile writes it: namespace (by URI or index) and identifier."""

    text: str
    namespace_uri: str | None
    namespace_index: int | None
    identifier: int | str

    @classmethod
    def parse(cls, text: str, where: str) -> NodeRef:
        m = _NODE.match(str(text))
        if not m:
            raise ProfileError(f"{where}: {text!r} is not NodeId text (nsu=URI;s=Name, ns=2;s=Name, i=2253); the "
                               "simulator builds its nodes from NodeIds, not browse paths")
        ident: int | str = int(m["i"]) if m["i"] is not None else m["s"]
        return cls(str(text), m["nsu"], int(m["ns"]) if m["ns"] is not None else None, ident)


@dataclass(frozen=True)
class Point:
    name: str
    node: NodeRef
    kind: str  # identity | clock | process_value | setpoint | parameter
    unit: str | None = None
    range: tuple[float, float] | None = None

    @property
    def operation(self) -> str | None:
        """The operation a write needs (the contract's table); None: read-only."""
        return {"setpoint": "write_setpoint", "parameter": "write_parameter", "clock": "write_parameter"}.get(self.kind)


@dataclass(frozen=True)
class Method:
    name: str
    object: NodeRef
    method: NodeRef
    operation: str


@dataclass(frozen=True)
class Lockout:
    after_failures: int
    kind: str  # lock | delay
    duration_s: float


@dataclass(frozen=True)
class AuditSpec:
    source: NodeRef
    event_type: NodeRef
    fields: dict[str, str]
    kinds: dict[str, str]
    clear: Method | None
    capacity: int
    events_per_day: int

    def category(self, kind: str) -> str:
        return self.kinds.get(kind, kind)


@dataclass(frozen=True)
class UpdateSpec:
    object: NodeRef
    methods: dict[str, NodeRef]
    state: NodeRef
    running_version: str
    previous_version: NodeRef | None
    available_version: NodeRef | None
    signature: str
    min_version: str | None
    below_min_version: str
    health_check_s: float
    chunk_bytes: int


@dataclass(frozen=True)
class ControllerProfile:
    vendor: str
    model: str
    utc_offset_s: float
    endpoint_path: str
    namespace_uri: str
    policies: list[str]
    modes: list[str]
    identities: list[str]
    lockout: Lockout | None
    points: dict[str, Point]
    methods: dict[str, Method]
    roles: dict[str, frozenset[str]]
    audit: AuditSpec | None
    update: UpdateSpec | None
    max_connections: int | None = None  # UA-TCP connections taken at once (None: asyncua's own bound)
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


def _get(d: dict[str, Any], key: str, where: str, default: Any = ...) -> Any:
    if not isinstance(d, dict):
        raise ProfileError(f"{where}: expected a mapping")
    if key in d:
        return d[key]
    if default is ...:
        raise ProfileError(f"{where}: `{key}` is missing")
    return default


def _method(name: str, d: dict[str, Any], where: str) -> Method:
    return Method(name, NodeRef.parse(_get(d, "object", where), f"{where}.object"),
                  NodeRef.parse(_get(d, "method", where), f"{where}.method"), str(_get(d, "kind", where)))


def load_controller_profile(path: Path) -> ControllerProfile:
    try:
        raw = resolve_profile(path).data  # a profile may extend another (config/extends.py)
    except ConfigError as exc:
        raise ProfileError(str(exc)) from None
    where = str(path)
    ua = _get(raw, "opcua", where)
    clock = raw.get("clock") or {}
    m = _OFFSET.match(str(clock.get("utc_offset", "+00:00")))
    if not m:
        raise ProfileError(f"{where}: clock.utc_offset {clock.get('utc_offset')!r} is not like +05:00")
    offset = timedelta(hours=int(m[2]), minutes=int(m[3])) * (-1 if m[1] == "-" else 1)
    sec = _get(ua, "security", f"{where}: opcua")
    lock = sec.get("lockout")
    points = {name: Point(name, NodeRef.parse(_get(p, "node", f"points.{name}"), f"points.{name}.node"),
                          str(_get(p, "kind", f"points.{name}")), p.get("unit"),
                          tuple(p["range"]) if p.get("range") else None)  # type: ignore[arg-type]
              for name, p in _get(ua, "points", "opcua").items()}
    methods = {name: _method(name, d, f"methods.{name}") for name, d in (ua.get("methods") or {}).items()}
    roles = {role: frozenset(str(o) for o in ops) for role, ops in (ua.get("roles") or {}).items()}
    audit = None
    if ua.get("audit_log"):
        a = ua["audit_log"]
        audit = AuditSpec(
            source=NodeRef.parse(_get(a, "source", "audit_log"), "audit_log.source"),
            event_type=NodeRef.parse(_get(a, "event_type", "audit_log"), "audit_log.event_type"),
            fields={str(k): str(v) for k, v in _get(a, "fields", "audit_log").items()},
            kinds={str(k): str(v) for k, v in _get(a, "kinds", "audit_log").items()},
            clear=_method("clear_log", a["clear"], "audit_log.clear") if a.get("clear") else None,
            capacity=int(a.get("capacity") or 10000), events_per_day=int(a.get("events_per_day") or 100))
    update = None
    if ua.get("update"):
        u = ua["update"]
        update = UpdateSpec(
            object=NodeRef.parse(_get(u, "object", "update"), "update.object"),
            methods={k: NodeRef.parse(v, f"update.methods.{k}") for k, v in _get(u, "methods", "update").items()},
            state=NodeRef.parse(_get(u, "state", "update"), "update.state"),
            running_version=str(_get(u, "running_version", "update")),
            previous_version=NodeRef.parse(u["previous_version"], "update.previous_version")
            if u.get("previous_version") else None,
            available_version=NodeRef.parse(u["available_version"], "update.available_version")
            if u.get("available_version") else None,
            signature=str(u.get("signature", "ed25519")), min_version=u.get("min_version"),
            below_min_version=str(u.get("below_min_version", "refuse")),
            health_check_s=float(_get(u, "health_check_s", "update")), chunk_bytes=int(u.get("chunk_bytes", 65536)))
        missing = {"transfer", "install", "activate", "confirm", "rollback"} - set(update.methods)
        if missing:
            raise ProfileError(f"{where}: update.methods lacks {', '.join(sorted(missing))} (the simulator "
                               "has all five)")
        if update.running_version not in points:
            raise ProfileError(f"{where}: update.running_version names {update.running_version!r}, not a point")
    profile = ControllerProfile(
        vendor=str(_get(raw, "vendor", where)), model=str(_get(raw, "model", where)),
        utc_offset_s=offset.total_seconds(), endpoint_path=str(ua.get("endpoint_path", "")),
        namespace_uri=str(_get(ua, "namespace_uri", "opcua")),
        policies=[str(p) for p in _get(sec, "policies", "opcua.security")],
        modes=[str(m) for m in _get(sec, "modes", "opcua.security")],
        identities=[str(i) for i in _get(sec, "identities", "opcua.security")],
        lockout=Lockout(int(lock["after_failures"]), str(lock["kind"]), float(lock["duration_s"])) if lock else None,
        points=points, methods=methods, roles=roles, audit=audit, update=update,
        max_connections=int(ua["max_connections"]) if ua.get("max_connections") else None, raw=raw)
    if not profile.roles:
        raise ProfileError(f"{where}: opcua.roles is empty; the controller enforces roles on every write and call")
    return profile

