"""The audit log on the wire: the device's audit event type, live events from the Server object, and
HistoryRead of the stored log.

Every entry becomes one event of the profile's ``audit_log.event_type`` — a subtype of
AuditEventType with the custom properties the profile's ``fields`` name (Category, OldValue,
NewValue) — emitted from ``audit_log.source`` as it is recorded, and served again from the
non-volatile log by a HistoryRead of events on the same node (``AuditHistory`` is the history
backend asyncua's HistoryManager asks). ``AuditEvent`` duck-types asyncua's Event: the
subscription service and the history manager only need ``emitting_node``, ``EventType`` and
``to_event_fields``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua
from asyncua.server.history import HistoryStorageInterface

from harness.simulators.controller.audit import AuditEntry, AuditLog
from harness.simulators.controller.profile import AuditSpec

# Properties AuditEventType already has (with BaseEventType's): the profile may map fields onto them.
STANDARD = {"EventId": ua.VariantType.ByteString, "EventType": ua.VariantType.NodeId,
            "SourceNode": ua.VariantType.NodeId, "SourceName": ua.VariantType.String,
            "Time": ua.VariantType.DateTime, "ReceiveTime": ua.VariantType.DateTime,
            "Message": ua.VariantType.LocalizedText, "Severity": ua.VariantType.UInt16,
            "ActionTimeStamp": ua.VariantType.DateTime, "Status": ua.VariantType.Boolean,
            "ServerId": ua.VariantType.String, "ClientAuditEntryId": ua.VariantType.String,
            "ClientUserId": ua.VariantType.String}
SEVERITY = {"login_success": 100, "control_action": 300, "settings_change": 400, "firmware_update": 500,
            "login_failure": 600, "log_cleared": 600, "alarm": 700, "security_event": 800}
# canonical field -> the type of the custom property carrying it (old/new keep each value's own type)
_CUSTOM_TYPES = {"category": ua.VariantType.String, "user": ua.VariantType.String,
                 "outcome": ua.VariantType.Boolean, "subject": ua.VariantType.String,
                 "time": ua.VariantType.DateTime, "old": ua.VariantType.Variant, "new": ua.VariantType.Variant}


def value_variant(value: Any) -> ua.Variant:
    """An old/new value in its natural OPC UA type."""
    if value is None:
        return ua.Variant(None)
    if isinstance(value, bool):
        return ua.Variant(value, ua.VariantType.Boolean)
    if isinstance(value, int | float):
        return ua.Variant(float(value), ua.VariantType.Double)
    return ua.Variant(str(value), ua.VariantType.String)


class AuditEvent:
    """One audit entry as event fields (name -> Variant)."""

    def __init__(self, emitting_node: ua.NodeId, fields: dict[str, ua.Variant]) -> None:
        self.emitting_node = emitting_node
        self.fields = fields

    def __getattr__(self, name: str) -> Any:  # where-clause evaluation reads fields as attributes
        try:
            return self.__dict__["fields"][name].Value
        except KeyError:
            raise AttributeError(name) from None

    def to_event_fields(self, select_clauses: list[ua.SimpleAttributeOperand]) -> list[ua.Variant]:
        out = []
        for clause in select_clauses:
            name = "/".join(q.Name for q in clause.BrowsePath) if clause.BrowsePath else ""
            out.append(self.fields.get(name, ua.Variant(None)))
        return out


class AuditEventFactory:
    """Entries -> AuditEvents, per the profile's field and category mapping."""

    def __init__(self, spec: AuditSpec, event_type: ua.NodeId, source: ua.NodeId, server_uri: str) -> None:
        self.spec, self.event_type, self.source, self.server_uri = spec, event_type, source, server_uri

    def event(self, entry: AuditEntry) -> AuditEvent:
        t = datetime.fromtimestamp(entry.time, UTC)
        f = {"EventId": ua.Variant(f"{self.server_uri}#{entry.seq}".encode(), ua.VariantType.ByteString),
             "EventType": ua.Variant(self.event_type, ua.VariantType.NodeId),
             "SourceNode": ua.Variant(self.source, ua.VariantType.NodeId),
             "SourceName": ua.Variant(entry.subject, ua.VariantType.String),
             "Time": ua.Variant(t, ua.VariantType.DateTime), "ReceiveTime": ua.Variant(t, ua.VariantType.DateTime),
             "Message": ua.Variant(ua.LocalizedText(entry.message), ua.VariantType.LocalizedText),
             "Severity": ua.Variant(SEVERITY.get(entry.kind, 100), ua.VariantType.UInt16),
             "ActionTimeStamp": ua.Variant(t, ua.VariantType.DateTime),
             "Status": ua.Variant(entry.outcome, ua.VariantType.Boolean),
             "ServerId": ua.Variant(self.server_uri, ua.VariantType.String),
             "ClientAuditEntryId": ua.Variant(str(entry.seq), ua.VariantType.String),
             "ClientUserId": ua.Variant(entry.user, ua.VariantType.String)}
        canonical = {"time": ua.Variant(t, ua.VariantType.DateTime),
                     "category": ua.Variant(self.spec.category(entry.kind), ua.VariantType.String),
                     "user": ua.Variant(entry.user, ua.VariantType.String),
                     "outcome": ua.Variant(entry.outcome, ua.VariantType.Boolean),
                     "subject": ua.Variant(entry.subject, ua.VariantType.String),
                     "old": value_variant(entry.old), "new": value_variant(entry.new)}
        for name, prop in self.spec.fields.items():
            if name in canonical:
                f[prop] = canonical[name]
        return AuditEvent(self.source, f)


async def create_audit_event_type(server: Server, spec: AuditSpec, type_id: ua.NodeId) -> None:
    """The device's audit event type under AuditEventType, with a property for each mapped field that
    AuditEventType does not have already."""
    base = server.get_node(ua.NodeId(ua.ObjectIds.AuditEventType))
    etype = await base.add_object_type(type_id, ua.QualifiedName("TekAuditEventType", type_id.NamespaceIndex))
    for name, prop in spec.fields.items():
        if prop in STANDARD:
            continue
        vtype = _CUSTOM_TYPES.get(name, ua.VariantType.String)
        if vtype == ua.VariantType.Variant:
            await etype.add_property(type_id.NamespaceIndex, prop, ua.Variant(None), datatype=ua.NodeId(
                ua.ObjectIds.BaseDataType))
        else:
            await etype.add_property(type_id.NamespaceIndex, prop, ua.get_default_value(vtype), varianttype=vtype)


class AuditEmitter:
    """Live events, in the order they were recorded: the log's listener queues, one task triggers."""

    def __init__(self, server: Server, factory: AuditEventFactory) -> None:
        self.server, self.factory = server, factory
        self.queue: asyncio.Queue[AuditEntry] = asyncio.Queue(maxsize=10000)
        self.task: asyncio.Task[None] | None = None

    def attach(self, log: AuditLog) -> None:
        log.listeners.append(self._queue)
        self.task = asyncio.create_task(self._run())

    def _queue(self, entry: AuditEntry) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # nobody reads that fast; history keeps every entry
            self.queue.put_nowait(entry)

    async def _run(self) -> None:
        subscriptions = self.server.iserver.subscription_service
        while True:
            entry = await self.queue.get()
            await subscriptions.trigger_event(self.factory.event(entry))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class AuditHistory(HistoryStorageInterface):
    """HistoryRead of events on the audit source, answered from the stored log.

    Time semantics follow OPC UA Part 11: an unspecified start (or start after end) returns newest
    first. Every match goes out in one response: asyncua's client ``read_event_history`` does not
    follow continuation points, so a device that used them would look like it lost entries to it.
    """

    def __init__(self, log: AuditLog, factory: AuditEventFactory) -> None:
        super().__init__()
        self.log, self.factory = log, factory

    async def init(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def new_historized_node(self, node_id: ua.NodeId, period: Any, count: int = 0) -> None:
        return None

    async def save_node_value(self, node_id: ua.NodeId, datavalue: ua.DataValue) -> None:
        return None

    async def read_node_history(self, node_id: ua.NodeId, start: Any, end: Any, nb_values: int) -> Any:
        return [], None

    async def new_historized_event(self, source_id: ua.NodeId, evtypes: Any, period: Any, count: int = 0) -> None:
        return None

    async def save_event(self, event: Any) -> None:
        return None  # the log stores its entries itself, fsynced, before any event is emitted

    async def read_event_history(self, source_id: ua.NodeId, start: datetime | None, end: datetime | None,
                                 nb_values: int, evfilter: Any) -> tuple[list[AuditEvent], None]:
        if source_id != self.factory.source:
            return [], None
        t0, t1 = _bound(start), _bound(end)
        if t0 is None:
            entries, newest_first = self.log.between(None, t1), True
        elif t1 is None:
            entries, newest_first = self.log.between(t0, None), False
        elif t0 > t1:
            entries, newest_first = self.log.between(t1, t0), True
        else:
            entries, newest_first = self.log.between(t0, t1), False
        if newest_first:
            entries.reverse()
        if nb_values:
            entries = entries[:nb_values]
        return [self.factory.event(e) for e in entries], None


def _bound(t: datetime | None) -> float | None:
    if t is None or t <= ua.get_win_epoch():
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
