"""The audit log (cl. 69) of an OPC UA device: read by HistoryRead, watched by subscription, cleared by the
profile's method — the part of ``OpcuaDevice`` that speaks of audit entries, kept apart so the driver module
stays about sessions and exchanges. A mixin: it uses the device's ``_exchange``, ``_slot``, ``_call_node``,
``spec``, ``loop``, ``map`` and ``timeout``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from harness.config.opcua_map import Operation
from harness.devices.api import NotDeclared
from harness.devices.opcua_audit import AuditWatch, read_history, sort_entries, to_entry
from harness.devices.opcua_session import LiveSession, Slot
from harness.events import AuditEntry
from harness.reporting.texts import Msg


class AuditLogAccess:
    """Audit-log operations of ``OpcuaDevice`` (see the module docstring)."""

    def _audit(self) -> Any:
        if self.map.audit_log is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no audit log (opcua.audit_log)", device=self.name,
                                  model=self.profile.model))
        return self.map.audit_log

    def read_audit_log(self, start: datetime | None = None, end: datetime | None = None,
                       role: str | None = None) -> list[AuditEntry]:
        """Every audit entry between ``start`` and ``end`` (default: all), oldest first, by HistoryRead."""
        audit = self._audit()

        async def work(live: LiveSession) -> list[dict[str, Any]]:
            return await read_history(live, audit, start, end)

        raws, _, _ = self._exchange("history_read", self._slot(Operation.READ, role), work,
                                    budget_s=self.timeout * 50, summary=lambda r: {"events": len(r)},
                                    source=audit.source)
        return sort_entries([to_entry(raw, audit) for raw in raws])

    @contextlib.contextmanager
    def subscribe_audit(self, role: str | None = None, publishing_ms: float = 100.0) -> Iterator[AuditWatch]:
        """Audit events as they arrive, in a session of its own; ``watch.wait_for(match, timeout_s)``."""
        audit = self._audit()
        slot = Slot(self.spec(role=role, operation=Operation.READ))
        watch = AuditWatch(audit)
        self._exchange("subscribe", slot, lambda live: watch.start(live, publishing_ms), budget_s=self.timeout * 10,
                       source=audit.source)
        try:
            yield watch
        finally:
            if slot.live is not None:
                with contextlib.suppress(Exception):
                    self.loop.run(watch.stop(), self.timeout + 1)
                with contextlib.suppress(Exception):
                    self.loop.run(slot.live.close(), self.timeout * 3 + 1)

    def clear_audit_log(self, role: str | None = None) -> Any:
        """Clear the log through the profile's ``audit_log.clear`` method (as ``role``)."""
        clear = self._audit().clear
        if clear is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no way to clear the audit log", device=self.name,
                                  model=self.profile.model))
        return self._call_node(self._slot(clear.kind, role), clear.object, clear.method, (), "clear of the audit log")
