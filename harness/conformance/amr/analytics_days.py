"""The UTC days a period touches, and the part of the period in each: the days of an analytics' dynamics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def days_of(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """(UTC date, start and end of the period's part in that day) for each day ``[start, end)`` touches."""
    day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    while day < end:
        out.append((day.date().isoformat(), max(start, day), min(end, day + timedelta(days=1))))
        day += timedelta(days=1)
    return out
