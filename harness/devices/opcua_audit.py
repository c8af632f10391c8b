"""A controller's audit log (cl. 69) over OPC UA: HistoryRead of events, live event subscriptions.

The profile says where the events come from (``audit_log.source``), of which type they are
(``event_type``), which property carries each canonical field and what the device's categories
mean; this module turns whatever the device sends into ``harness.events.AuditEntry``. The event
filter is built from the device's own type hierarchy (so property names carry the namespace the
device gave them), once per session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from harness.config.opcua_map import AuditLog
from harness.devices.api import DeviceError
from harness.devices.opcua_session import LiveSession
from harness.events import AuditEntry
from harness.reporting.texts import Msg

MAX_PAGES = 1000  # continuation points followed per read, at most (each page is one bounded request)
_FAR_FUTURE_YEARS = 100  # a device clock may run ahead of the harness (fast-forwarded simulators)


async def event_filter(live: LiveSession, audit: AuditLog) -> tuple[Any, set[Any]]:
    """(EventFilter selecting every property of the event type, NodeIds of the type and its subtypes)."""
    from asyncua import ua
    from asyncua.common.events import get_filter_from_event_type
    from asyncua.common.ua_utils import get_node_subtypes

    cached = live.cache.get("audit_filter")
    if cached is not None:
        return cached
    etype = live.node(await live.node_id(audit.event_type))
    evfilter = await get_filter_from_event_type([etype])
    selected = {_clause_name(c) for c in evfilter.SelectClauses}
    for name in _declared_names(audit):
        if name not in selected:  # not in the type: asked for anyway, so its absence shows as None, not a typo
            evfilter.SelectClauses.append(ua.SimpleAttributeOperand(
                TypeDefinitionId=ua.NodeId(ua.ObjectIds.BaseEventType), BrowsePath=[ua.QualifiedName(name, 0)],
                AttributeId=ua.AttributeIds.Value))
    types = {n.nodeid for n in await get_node_subtypes(etype)}
    live.cache["audit_filter"] = (evfilter, types)
    return evfilter, types


def _declared_names(audit: AuditLog) -> list[str]:
    f = audit.fields
    return [n for n in (f.time, f.category, f.user, f.outcome, f.subject, f.old, f.new, "EventType") if n]


def _clause_name(clause: Any) -> str:
    if not clause.BrowsePath:
        return clause.AttributeId.name if hasattr(clause.AttributeId, "name") else str(clause.AttributeId)
    return "/".join(q.Name for q in clause.BrowsePath)


async def read_history(live: LiveSession, audit: AuditLog, start: datetime | None,
                       end: datetime | None) -> list[dict[str, Any]]:
    """Every event HistoryRead returns for ``audit.source`` between ``start`` and ``end`` (all pages)."""
    from asyncua import ua

    evfilter, types = await event_filter(live, audit)
    names = [_clause_name(c) for c in evfilter.SelectClauses]
    details = ua.ReadEventDetails()
    details.StartTime = start or datetime(1970, 1, 1, tzinfo=UTC)
    details.EndTime = end or datetime.now(UTC).replace(year=datetime.now(UTC).year + _FAR_FUTURE_YEARS)
    details.NumValuesPerNode = 0
    details.Filter = evfilter
    source = await live.node_id(audit.source)
    events: list[dict[str, Any]] = []
    continuation = None
    for _ in range(MAX_PAGES):
        params = ua.HistoryReadParameters()
        params.HistoryReadDetails = details
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        params.NodesToRead = [ua.HistoryReadValueId(NodeId=source, IndexRange="", ContinuationPoint=continuation)]
        result = (await live.client.uaclient.history_read(params))[0]
        result.StatusCode.check()
        for field_list in getattr(result.HistoryData, "Events", None) or []:
            raw = {name: plain(v.Value) for name, v in zip(names, field_list.EventFields, strict=False)}
            if _of_type(raw, types):
                events.append(raw)
        continuation = result.ContinuationPoint
        if not continuation:
            return events
    raise DeviceError(Msg("audit log: still more after {MAX_PAGES} HistoryRead pages; read a shorter period",
                          MAX_PAGES=MAX_PAGES))


def _of_type(raw: dict[str, Any], types: set[Any]) -> bool:
    """A server may ignore the filter's where clause (asyncua's history does): keep our event type only."""
    from asyncua import ua

    etype = raw.get("EventType")
    if etype is None or not types:
        return True
    try:
        return ua.NodeId.from_string(etype) in types
    except Exception:
        return True


def to_entry(raw: dict[str, Any], audit: AuditLog) -> AuditEntry:
    """One device event in canonical terms (``raw`` kept whole as evidence)."""
    f = audit.fields
    category = raw.get(f.category)
    when = raw.get(f.time)
    if isinstance(when, datetime) and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    outcome = raw.get(f.outcome) if f.outcome else None
    return AuditEntry(
        time=when if isinstance(when, datetime) else None,
        kind=audit.kind_of(category),
        category=None if category is None else str(category),
        user=_text(raw.get(f.user)) if f.user else None,
        outcome=None if outcome is None else bool(outcome),
        subject=_text(raw.get(f.subject)) if f.subject else None,
        old=raw.get(f.old) if f.old else None,
        new=raw.get(f.new) if f.new else None,
        raw=raw)


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def plain(value: Any) -> Any:
    """An OPC UA value as plain Python: LocalizedText → text, NodeId → its string, StatusCode → name."""
    from asyncua import ua

    if isinstance(value, ua.LocalizedText):
        return value.Text
    if isinstance(value, ua.NodeId | ua.QualifiedName):
        return value.to_string()
    if isinstance(value, ua.StatusCode):
        return value.name
    if isinstance(value, ua.Variant):
        return plain(value.Value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def sort_entries(entries: list[AuditEntry]) -> list[AuditEntry]:
    """Oldest first (entries without a time last, in the order the device sent them)."""
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(entries, key=lambda e: e.time or far)


class AuditWatch:
    """Audit events as they arrive over a subscription; ``wait_for`` blocks, bounded, for a match."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self._entries: list[AuditEntry] = []
        self._changed = threading.Condition()
        self.subscription: Any = None
        self.types: set[Any] = set()

    @property
    def entries(self) -> list[AuditEntry]:
        with self._changed:
            return list(self._entries)

    def wait_for(self, match: Callable[[AuditEntry], bool] | None = None, timeout_s: float = 5.0) -> AuditEntry | None:
        """The first entry (seen before or arriving within ``timeout_s``) that ``match`` accepts, or None."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for entry in self._entries:
                    if match is None or match(entry):
                        return entry
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    # asyncua's subscription handler interface (called on the device's loop)
    def event_notification(self, event: Any) -> None:
        raw = {name: plain(v.Value) for name, v in event.get_event_props_as_fields_dict().items()}
        if not _of_type(raw, self.types):
            return
        entry = to_entry(raw, self._audit)
        with self._changed:
            self._entries.append(entry)
            self._changed.notify_all()

    def status_change_notification(self, status: Any) -> None:
        """The subscription ended on the device's side; what arrived stays."""

    async def start(self, live: LiveSession, publishing_ms: float = 100.0) -> None:
        evfilter, self.types = await event_filter(live, self._audit)
        self.subscription = await live.client.create_subscription(publishing_ms, self)
        await self.subscription.subscribe_events(await live.node_id(self._audit.source),
                                                 await live.node_id(self._audit.event_type), evfilter=evfilter)

    async def stop(self) -> None:
        if self.subscription is not None:
            try:
                await self.subscription.delete()
            finally:
                self.subscription = None
