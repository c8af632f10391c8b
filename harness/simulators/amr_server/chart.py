"""A subscriber's consumption as an inline SVG bar chart, drawn on the server (the page loads nothing else).

A meter's reading is a cumulative register, so consumption over a stretch of time is the register's rise:
the span from the first to the last reading is cut into equal buckets and each bucket gets the rise of the
register between the readings that fall in it (and the last one before it). Falls (a register reset or a
correction) count as nothing rather than as negative consumption.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

WIDTH, HEIGHT, PAD = 640, 200, 40


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    start: str  # the bucket's first instant (ISO 8601 UTC)
    consumption: float


@dataclass(frozen=True)
class Chart:
    meter: str
    unit: str
    bars: list[Bar]
    total: float  # the register's rise over the whole span
    peak: float
    first: str | None
    last: str | None
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD


def consumption_chart(meter: str, unit: str, readings: list[tuple[str, float]], buckets: int = 24) -> Chart:
    """The chart of one meter from its readings (reading time, register value), oldest first."""
    if len(readings) < 2:
        return Chart(meter, unit, [], 0.0, 0.0, readings[0][0] if readings else None,
                     readings[-1][0] if readings else None)
    times = [datetime.fromisoformat(t).timestamp() for t, _ in readings]
    t0, t1 = times[0], times[-1]
    span = max(t1 - t0, 1e-6)
    sums = [0.0] * buckets
    for i in range(1, len(readings)):
        rise = readings[i][1] - readings[i - 1][1]
        if rise > 0:
            sums[min(int((times[i] - t0) / span * buckets), buckets - 1)] += rise
    peak = max(sums)
    step = (WIDTH - 2 * PAD) / buckets
    bars = []
    for k, value in enumerate(sums):
        h = (HEIGHT - 2 * PAD) * (value / peak) if peak > 0 else 0.0
        start = datetime.fromtimestamp(t0 + span * k / buckets, UTC).isoformat(timespec="seconds")
        bars.append(Bar(x=PAD + k * step + 1, y=HEIGHT - PAD - h, width=max(step - 2, 1), height=h, start=start,
                        consumption=value))
    return Chart(meter, unit, bars, sum(sums), peak, readings[0][0], readings[-1][0])
