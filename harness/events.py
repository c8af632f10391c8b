"""The canonical vocabulary of event journals (cl. 97, groundwork for cl. 69).

Meters log events under their own code tables (DSMR/DLMS 1 = power failure, SPODES keeps a
journal per category, ABB EQ has categories and event ids); a profile maps those codes to the
kinds below, so the journal suite can ask "was the clock set logged?" of any meter without
knowing its code table. A sibling of ``quantities.py`` for the same reason quantities exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class EventKind(StrEnum):
    """What happened, whatever the device calls it."""

    POWER_DOWN = "power_down"
    POWER_UP = "power_up"
    CLOCK_SET = "clock_set"
    COVER_OPEN = "cover_open"
    COVER_CLOSED = "cover_closed"
    MAGNETIC_FIELD = "magnetic_field"
    CONFIG_CHANGE = "config_change"
    TARIFF_SCHEDULE_CHANGE = "tariff_schedule_change"
    FIRMWARE_UPDATE = "firmware_update"
    AUTH_FAILURE = "auth_failure"
    JOURNAL_CLEARED = "journal_cleared"
    CHANNEL_DOWN = "channel_down"
    CHANNEL_UP = "channel_up"


class WhenFull(StrEnum):
    """What a full journal does with the next event (a profile declares it; the suite checks it)."""

    OVERWRITE_OLDEST = "overwrite_oldest"
    STOP = "stop"


# Tamper inputs a simulator's control channel can set, and the kinds they produce (active, inactive).
TAMPER_INPUTS: dict[str, tuple[EventKind, EventKind | None]] = {
    "cover": (EventKind.COVER_OPEN, EventKind.COVER_CLOSED),
    "magnetic_field": (EventKind.MAGNETIC_FIELD, None),
}


@dataclass(frozen=True)
class JournalEntry:
    """One journal entry as read from a device.

    ``kind`` is None when the device logged a code its profile does not map: the entry is still
    evidence (and the journal suite reports it), it just has no canonical meaning.
    """

    sequence: int
    timestamp: datetime
    kind: EventKind | None
    code: int
    details: dict[str, int] = field(default_factory=dict)


# ---- control-system audit log (cl. 69) ------------------------------------------------------------
# Controllers keep an audit log rather than a meter journal: who did what, when, with which outcome.
# A profile maps the device's category strings to these kinds (opcua.audit_log.kinds).


class AuditKind(StrEnum):
    """What an audit-log entry records, whatever the device calls its category."""

    CONTROL_ACTION = "control_action"
    LOGIN_SUCCESS = "login_success"
    LOGIN_FAILURE = "login_failure"
    SETTINGS_CHANGE = "settings_change"
    ALARM = "alarm"
    FIRMWARE_UPDATE = "firmware_update"
    SECURITY_EVENT = "security_event"
    LOG_CLEARED = "log_cleared"


@dataclass(frozen=True)
class AuditEntry:
    """One audit-log entry as read from a device, in canonical terms.

    ``kind`` is None when the device's category is not mapped by its profile; ``raw`` keeps every
    field the device sent (by property name) as evidence. Absent fields are None: a check that needs
    the user of every entry (cl. 69) sees exactly which ones lack it.
    """

    time: datetime | None
    kind: AuditKind | None
    category: str | None
    user: str | None
    outcome: bool | None
    subject: str | None
    old: object = None
    new: object = None
    raw: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
