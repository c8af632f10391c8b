"""Charts of the evidence as inline SVG, in pure Python, for the self-contained certificate.html.

A lab hands the report over on paper as often as on screen, so every chart must survive a
black-and-white printer: series differ by colour *and* by dash pattern or marker shape, and events
(a power cut, a switchover) are dashed vertical lines with their labels. No matplotlib, no fonts or
images from elsewhere, no script, no ``url(...)`` references: the page must open anywhere, offline,
years later. Long runs are downsampled per bucket to their min and max so a spike stays visible.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from html import escape

from harness.reporting.records import Chart

SVG_NS = "http://www.w3.org/2000/svg"
MAX_POINTS = 2000  # per series: far above what 700 pixels can show, small enough to keep the page light
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'DejaVu Sans', sans-serif"
# Okabe-Ito: distinguishable with the common colour-vision deficiencies; yellow left out (invisible on paper).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
DASHES = ("", "7 3", "2 2", "9 3 2 3", "1 3", "12 4", "4 2 1 2")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "plus", "ring")

Point = tuple[float, float]

WIDTH, PLOT_HEIGHT = 760, 240
CHAR_W = 6.3  # approximate advance of an 11-px sans-serif character, for layout only
MAX_EVENT_ROWS = 3
MARKED_POINTS = 40  # up to this many points a line also marks each point (one point alone needs it)


def finite_points(points: Sequence[Sequence[float]]) -> list[Point]:
    """Drop NaN, infinities and malformed pairs: one bad sample must not break the whole report."""
    out: list[Point] = []
    for p in points:
        try:
            x, y = float(p[0]), float(p[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(x) and math.isfinite(y):
            out.append((x, y))
    return out


def downsample(points: Sequence[Point], max_points: int = MAX_POINTS) -> list[Point]:
    """At most ``max_points`` points: per bucket of consecutive points, its min and max in original order.

    Plain decimation would drop the one sample where a register jumped; min/max keeps it.
    """
    n = len(points)
    if n <= max_points:
        return list(points)
    buckets = max(1, max_points // 2)
    size = math.ceil(n / buckets)
    out: list[Point] = []
    for start in range(0, n, size):
        chunk = points[start:start + size]
        lo = min(range(len(chunk)), key=lambda i: chunk[i][1])
        hi = max(range(len(chunk)), key=lambda i: chunk[i][1])
        out.extend(chunk[i] for i in sorted({lo, hi}))
    return out


def _nice(x: float) -> float:
    exp = math.floor(math.log10(x))
    f = x / 10**exp
    return (1 if f < 1.5 else 2 if f < 3 else 5 if f < 7 else 10) * 10**exp


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 × 10ⁿ apart) whose first ≤ lo and last ≥ hi (Heckbert's labels)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    lo, hi = min(lo, hi), max(lo, hi)
    if hi - lo <= abs(hi) * 1e-12:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice((hi - lo) / max(1, target - 1))
    while True:
        first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
        if last - first <= target + 1:
            break
        step = _nice(step * 1.6)  # the next of 1, 2, 5 × 10ⁿ: fewer ticks than that crowd the axis
    digits = _decimals(step) + 1
    return [round(i * step, digits) + 0.0 for i in range(first, last + 1)]


def format_tick(v: float, step: float) -> str:
    """A tick label with no float noise (0.30000000000000004), no needless decimals, digits grouped.

    Every label of an axis gets the same format (the step decides), so 5 000 000 never sits next to 1e+07.
    """
    if v == 0:
        return "0"
    if abs(v) >= 1e9 or step < 1e-4:
        digits = max(2, math.floor(math.log10(abs(v))) - math.floor(math.log10(step)) + 1)
        return f"{v:.{min(digits, 15)}g}"
    return f"{v:,.{_decimals(step)}f}".replace(",", "\u202f")  # narrow no-break space groups thousands


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _marker(shape: str, x: float, y: float, colour: str, r: float = 3.2) -> str:
    c = f'fill="{colour}" stroke="{colour}"'
    if shape == "ring":
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{r}" fill="#fff" stroke="{colour}" stroke-width="1.5"/>'
    if shape == "circle":
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{r}" {c}/>'
    if shape == "square":
        return f'<rect x="{_f(x - r)}" y="{_f(y - r)}" width="{2 * r}" height="{2 * r}" {c}/>'
    if shape == "triangle":
        return f'<path d="M{_f(x)} {_f(y - r - 1)}L{_f(x + r + 0.6)} {_f(y + r)}H{_f(x - r - 0.6)}Z" {c}/>'
    if shape == "diamond":
        return (f'<path d="M{_f(x)} {_f(y - r - 1)}L{_f(x + r + 1)} {_f(y)}L{_f(x)} {_f(y + r + 1)}'
                f'L{_f(x - r - 1)} {_f(y)}Z" {c}/>')
    d = (f"M{_f(x - r)} {_f(y - r)}L{_f(x + r)} {_f(y + r)}M{_f(x - r)} {_f(y + r)}L{_f(x + r)} {_f(y - r)}"
         if shape == "cross" else f"M{_f(x - r)} {_f(y)}H{_f(x + r)}M{_f(x)} {_f(y - r)}V{_f(y + r)}")
    return f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.6"/>'


def _svg_open(height: float, label: str) -> str:
    return (f'<svg xmlns="{SVG_NS}" class="chart" viewBox="0 0 {WIDTH} {_f(height)}" width="{WIDTH}" '
            f'height="{_f(height)}" role="img" aria-label="{escape(label)}" font-family="{escape(FONT)}" '
            f'font-size="11"><title>{escape(label)}</title>'
            f'<rect x="0" y="0" width="{WIDTH}" height="{_f(height)}" fill="#ffffff"/>')


def _no_data(chart: Chart) -> str:
    h = 90
    return (_svg_open(h, f"{chart.title}: no data")
            + f'<text x="12" y="20" font-weight="600" font-size="13" fill="#222">{escape(chart.title)}</text>'
            + f'<rect x="12" y="32" width="{WIDTH - 24}" height="46" fill="#fafafa" stroke="#bbb" '
              'stroke-dasharray="4 3"/>'
            + f'<text x="{WIDTH / 2}" y="60" text-anchor="middle" fill="#666">no data recorded for this chart'
              "</text></svg>")


def _bar_width(points: list[Point]) -> float:
    xs = sorted({x for x, _ in points})
    gaps = [b - a for a, b in itertools.pairwise(xs) if b > a]
    return min(gaps) if gaps else 1.0


def _event_rows(events: list[tuple[float, str]], to_px) -> tuple[list[tuple[float, str, int]], list[tuple[float, str]]]:
    """Place event labels in up to MAX_EVENT_ROWS rows without overlap; return placed and left-over ones."""
    ends = [-1e9] * MAX_EVENT_ROWS
    placed, left = [], []
    for x, label in sorted(events, key=lambda e: e[0]):
        px = to_px(x)
        text = label if len(label) <= 32 else label[:31] + "…"
        w = len(text) * CHAR_W + 8
        row = next((r for r in range(MAX_EVENT_ROWS) if ends[r] < px - 2), None)
        if row is None:
            left.append((x, label))
            continue
        ends[row] = px + w
        placed.append((x, text, row))
    return placed, left


def render_chart_svg(chart: Chart) -> str:
    """The chart as one ``<svg>`` element: axes, round ticks, labels, legend, events; never raises on data."""
    series = {name: downsample(sorted(finite_points(pts))) for name, pts in chart.series.items()}
    series = {k: v for k, v in series.items() if v}
    events = [(float(x), str(label)) for x, label in chart.events if math.isfinite(float(x))]
    if not series:
        return _no_data(chart)
    hist = chart.kind == "histogram"
    xs = [x for pts in series.values() for x, _ in pts] + [x for x, _ in events]
    ys = [y for pts in series.values() for _, y in pts] + ([0.0] if hist else [])
    half = {k: _bar_width(v) / 2 for k, v in series.items()} if hist else {}
    pad = max(half.values(), default=0.0)
    if chart.kind == "scatter":  # a marker on the frame is half hidden by it
        pad = (max(xs) - min(xs)) * 0.02
    # y: widened to round ticks (headroom); x: the data's own extent, ticks inside it (no empty margins)
    ylo, yhi = min(ys), max(ys)
    margin = 0.0 if hist else (yhi - ylo) * 0.03  # keep a line off the frame, where it would be hard to see
    lo_pad, hi_pad = ylo - margin, yhi + margin
    yt = nice_ticks(0.0 if ylo >= 0 > lo_pad else lo_pad, 0.0 if yhi <= 0 < hi_pad else hi_pad)
    xt = nice_ticks(min(xs) - pad, max(xs) + pad)
    ystep, xstep = yt[1] - yt[0], xt[1] - xt[0]
    y0, y1, x0, x1 = yt[0], yt[-1], min(xs) - pad, max(xs) + pad
    inside = [t for t in xt if x0 - xstep * 1e-6 <= t <= x1 + xstep * 1e-6]
    if x1 - x0 < xstep or len(inside) < 2:
        x0, x1 = xt[0], xt[-1]
    else:
        xt = inside
    ylabels = [format_tick(v, ystep) for v in yt]
    left = 30 + max(len(s) for s in ylabels) * CHAR_W
    right = 18
    pw = WIDTH - left - right

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    placed, leftover = _event_rows(events, px)
    rows = 1 + max((r for _, _, r in placed), default=-1)
    top = 30 + rows * 14 + (6 if rows else 0)
    ph = PLOT_HEIGHT

    def py(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    names = list(series)
    legend_items, lx, ly = [], left, top + ph + 46
    for i, name in enumerate(names):
        w = 34 + len(name) * CHAR_W + 18
        if lx + w > WIDTH - right and lx > left:
            lx, ly = left, ly + 16
        legend_items.append((name, i, lx, ly))
        lx += w
    height = ly + 14 + (16 if leftover else 0)
    title = f"{chart.title} ({chart.kind} chart of {', '.join(names)})"
    out = [_svg_open(height, title),
           f'<text x="12" y="18" font-weight="600" font-size="13" fill="#222">{escape(chart.title)}</text>']
    # grid and ticks
    for v, s in zip(yt, ylabels, strict=True):
        y = py(v)
        out.append(f'<line x1="{_f(left)}" x2="{_f(left + pw)}" y1="{_f(y)}" y2="{_f(y)}" stroke="#e3e3e3"/>'
                   f'<text x="{_f(left - 6)}" y="{_f(y + 3.5)}" text-anchor="end" fill="#444">{escape(s)}</text>')
    for v in xt:
        x = px(v)
        out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(top + ph)}" y2="{_f(top + ph + 4)}" stroke="#555"/>'
                   f'<text x="{_f(x)}" y="{_f(top + ph + 16)}" text-anchor="middle" fill="#444">'
                   f"{escape(format_tick(v, xstep))}</text>")
    out.append(f'<rect x="{_f(left)}" y="{_f(top)}" width="{_f(pw)}" height="{ph}" fill="none" stroke="#888"/>')
    out.append(f'<text x="{_f(left + pw / 2)}" y="{_f(top + ph + 32)}" text-anchor="middle" fill="#222">'
               f"{escape(chart.x_label)}</text>"
               f'<text transform="translate(12 {_f(top + ph / 2)}) rotate(-90)" text-anchor="middle" fill="#222">'
               f"{escape(chart.y_label)}</text>")
    # data
    for i, name in enumerate(names):
        out.append(_draw_series(chart.kind, series[name], i, len(names), half.get(name, 0.0), px, py, y0))
    # events: dashed vertical lines with their labels above the plot
    for x, label in events:
        out.append(f'<line x1="{_f(px(x))}" x2="{_f(px(x))}" y1="{_f(top)}" y2="{_f(top + ph)}" stroke="#333" '
                   f'stroke-width="1" stroke-dasharray="5 3"><title>{escape(label)}</title></line>')
    for x, text, row in placed:
        y = 30 + row * 14 + 8
        out.append(f'<line x1="{_f(px(x))}" x2="{_f(px(x))}" y1="{_f(y + 2)}" y2="{_f(top)}" stroke="#999" '
                   f'stroke-dasharray="1 2"/><text x="{_f(px(x) + 2)}" y="{_f(y)}" fill="#333">{escape(text)}</text>')
    for name, i, lx, ly in legend_items:
        out.append(_legend_swatch(chart.kind, i, lx, ly, marked=len(series[name]) <= MARKED_POINTS)
                   + f'<text x="{_f(lx + 30)}" y="{_f(ly + 4)}" fill="#222">{escape(name)}</text>')
    if leftover:
        more = "; ".join(f"{format_tick(x, xstep)}: {label}" for x, label in leftover[:12])
        more += f"; … (+{len(leftover) - 12})" if len(leftover) > 12 else ""
        out.append(f'<text x="{_f(left)}" y="{_f(height - 6)}" fill="#555">Unlabelled events: {escape(more)}</text>')
    out.append("</svg>")
    return "".join(out)


def _style(i: int) -> tuple[str, str, str]:
    """Colour, dash pattern and marker of series i; the three cycles are shifted so no two of 49 look alike."""
    turn = i // len(COLOURS)
    return (COLOURS[i % len(COLOURS)], DASHES[(i + turn) % len(DASHES)], MARKERS[(i + 2 * turn) % len(MARKERS)])


def _draw_series(kind: str, pts: list[Point], i: int, n: int, half: float, px, py, y0: float) -> str:
    colour, dash, shape = _style(i)
    if kind == "histogram":
        slot = 2 * half / n
        base = py(max(y0, 0.0))
        bars = []
        for x, y in pts:
            bx, top = px(x - half + i * slot), py(y)
            w = max(0.8, px(x - half + (i + 1) * slot) - bx - (0.6 if n > 1 else 0.3))
            bars.append(f'<rect x="{_f(bx)}" y="{_f(min(top, base))}" width="{_f(w)}" '
                        f'height="{_f(abs(base - top))}"/>')
        opacity = 0.85 - 0.25 * (i % 3)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        return (f'<g fill="{colour}" fill-opacity="{opacity:.2f}" stroke="#222" stroke-width="0.6"{dash_attr}>'
                + "".join(bars) + "</g>")
    if kind == "scatter":
        return "<g>" + "".join(_marker(shape, px(x), py(y), colour, 2.6) for x, y in pts) + "</g>"
    if kind == "step":
        d = f"M{_f(px(pts[0][0]))} {_f(py(pts[0][1]))}" + "".join(
            f"H{_f(px(x))}V{_f(py(y))}" for x, y in pts[1:])
    else:
        d = "M" + "L".join(f"{_f(px(x))} {_f(py(y))}" for x, y in pts)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    path = f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.8"{dash_attr} stroke-linejoin="round"/>'
    if len(pts) <= MARKED_POINTS:  # few points: mark them (a single point would otherwise be invisible)
        path += "".join(_marker(shape, px(x), py(y), colour, 2.6) for x, y in pts)
    return path


def _legend_swatch(kind: str, i: int, x: float, y: float, *, marked: bool) -> str:
    colour, dash, shape = _style(i)
    if kind == "histogram":
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        return (f'<rect x="{_f(x)}" y="{_f(y - 4)}" width="24" height="9" fill="{colour}" '
                f'fill-opacity="{0.85 - 0.25 * (i % 3):.2f}" stroke="#222" stroke-width="0.6"{dash_attr}/>')
    mark = _marker(shape, x + 12, y, colour, 2.8) if marked or kind == "scatter" else ""
    if kind == "scatter":
        return mark
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{_f(x)}" x2="{_f(x + 24)}" y1="{_f(y)}" y2="{_f(y)}" stroke="{colour}" '
            f'stroke-width="1.8"{dash_attr}/>' + mark)
