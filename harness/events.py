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
