"""Inline SVG charts for the report page: line charts with axes, histograms, horizontal and stacked bars.

    line_chart("loss-step", [Series("r0", "train", points, "#4e79a7")], x_label="step", y_label="loss")
    histogram_chart("lengths", [(0, 64, 12), (64, 128, 30)], x_label="tokens", markers=[(512, "max_seq_len")])
    bar_chart("removed", [("too_short", 10), ("near_dup", 31)], x_label="rows")

Plain strings, no library: the page must open offline, and a hand-written SVG is a few hundred bytes per chart.
Every drawn mark carries ``class="mark"`` and the ``data-run`` of the series it belongs to, so the browser test
can check that each chart drew something for every run. Text is escaped here; callers pass plain strings.
Long series are thinned with ``downsample.min_max_buckets`` (spikes stay) and drawn faint under their moving
average (``smooth``), so a noisy 10,000-step loss shows both its trend and its spikes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from mlxsft.report.downsample import min_max_buckets
from mlxsft.report.html import esc

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
           "#bab0ac")
WIDTH, HEIGHT = 560, 270
LEFT, RIGHT, TOP, BOTTOM = 62, 24, 12, 42
MAX_BUCKETS = 400  # per series: at most ~800 points, plenty for a chart this wide
MAX_MARKERS = 80  # more points than this: a line without dots
SMOOTH_FROM = 300  # more points than this: a faint raw curve with its moving average over it

Point = tuple[float, float]


@dataclass
class Series:
    run: str  # the run's id on the page (data-run), e.g. "r0"
    label: str  # the legend's text
    points: list[Point]
    color: str
    dashed: bool = False
    markers: bool = False  # dots at each point (validation: few points, each one a measurement)
    hover: str = "{x}: {y}"  # the tooltip of a dot
    smooth: bool = False  # a noisy measurement: past SMOOTH_FROM points, draw its moving average over it


@dataclass
class Axis:
    label: str
    fmt: Callable[[float], str] = field(default=lambda v: fmt_num(v))
    zero: bool = False  # the range includes 0 (throughput, memory: a bar-like reading)
    log: Optional[bool] = None  # None: log when the values span more than LOG_SPAN


LOG_SPAN = 10.0


# ----------------------------------------------------------------------------- numbers and ticks
def fmt_num(v: float) -> str:
    """A short label: 0, 0.25, 12.5, 1.5k, 2M, 3e-4."""
    if v == 0:
        return "0"
    a = abs(v)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{v / scale:.3g}{suffix}"
    if a < 1e-2:
        mantissa, exponent = f"{v:.2e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{v:.3g}"


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round ticks (1, 2, 2.5, 5 x 10^k) from at or below ``lo`` to at or above ``hi``."""
    if not hi > lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * 0.999)
    first = math.floor(lo / step + 1e-9) * step
    ticks = []
    k = 0
    while True:
        t = first + k * step
        ticks.append(round(t, 12))
        if t >= hi - 1e-9 * step:
            return ticks
        k += 1


def log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 x 10^k inside [lo, hi]; every integer mantissa when that gives fewer than three."""
    for mantissas in ((1, 2, 5), tuple(range(1, 10))):
        ticks = [m * 10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                 for m in mantissas if lo <= m * 10 ** e <= hi]
        if len(ticks) >= 3:
            return ticks
    return [lo, hi]


class Scale:
    """Data value -> pixel along one axis, linear or log."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float, log: bool = False):
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        self.p0, self.p1 = p0, p1

    def __call__(self, v: float) -> float:
        v = math.log10(v) if self.log else v
        span = self.hi - self.lo or 1.0
        return self.p0 + (v - self.lo) / span * (self.p1 - self.p0)


def _range(values: Sequence[float], axis: Axis) -> tuple[list[float], bool, float, float]:
    """(ticks, log scale?, low end, high end) of an axis showing ``values``."""
    lo, hi = min(values), max(values)
    if axis.zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    log = axis.log if axis.log is not None else (lo > 0 and hi / lo > LOG_SPAN)
    if log and lo > 0:
        lo, hi = lo / 1.08, hi * 1.08
        return log_ticks(lo, hi), True, lo, hi
    ticks = nice_ticks(lo, hi)
    return ticks, False, ticks[0], ticks[-1]


# ----------------------------------------------------------------------------- line charts
def line_chart(chart_id: str, series: list[Series], *, x: Axis, y: Axis,
               hlines: Sequence[tuple[float, str]] = (), empty: str = "no data") -> str:
    """Curves of ``series`` on shared axes; ``hlines``: dashed reference lines (value, label)."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return f'<div class="chart-empty">{esc(empty)}</div>'
    xs = [p[0] for s in drawn for p in s.points]
    ys = [p[1] for s in drawn for p in s.points] + [v for v, _ in hlines]
    xticks, _, x0, x1 = _range(xs, Axis(x.label, log=False))
    yticks, ylog, y0, y1 = _range(ys, y)
    sx = Scale(x0, x1, LEFT, WIDTH - RIGHT)
    sy = Scale(y0, y1, HEIGHT - BOTTOM, TOP, log=ylog)
    out = [_open(chart_id, " ".join(sorted({s.run for s in drawn})))]
    out += _axes(sx, sy, xticks, yticks, x, y, ylog)
    for value, label in hlines:
        py = sy(value)
        out.append(f'<line class="ref" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>'
                   f'<text class="ref-label" x="{WIDTH - RIGHT - 4}" y="{py - 4:.1f}" text-anchor="end">'
                   f'{esc(label)}</text>')
    for s in drawn:
        pts = min_max_buckets(sorted(s.points), MAX_BUCKETS)
        coords = [(sx(px), sy(py)) for px, py in pts]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        noisy = s.smooth and len(s.points) > SMOOTH_FROM
        faint = ' stroke-opacity="0.28" stroke-width="1"' if noisy else ""
        out.append(f'<path class="mark series" data-run="{esc(s.run)}" d="{_path(coords)}" stroke="{s.color}"'
                   f'{dash}{faint}><title>{esc(s.label)}</title></path>')
        if noisy:  # the raw curve stays, faint (spikes and all); its trend is drawn over it
            trend = min_max_buckets(smooth(sorted(s.points)), MAX_BUCKETS // 2)
            out.append(f'<path class="mark series trend" data-run="{esc(s.run)}" '
                       f'd="{_path([(sx(px), sy(py)) for px, py in trend])}" stroke="{s.color}"{dash}>'
                       f'<title>{esc(s.label)} (smoothed)</title></path>')
        if s.markers or len(pts) == 1:
            if len(pts) <= MAX_MARKERS:
                for (px, py), (cx, cy) in zip(pts, coords):
                    tip = s.hover.format(x=x.fmt(px), y=y.fmt(py), label=s.label)
                    out.append(f'<circle class="mark dot" data-run="{esc(s.run)}" cx="{cx:.1f}" cy="{cy:.1f}" '
                               f'r="3.5" fill="{s.color}"><title>{esc(tip)}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _path(coords: list[Point]) -> str:
    return "M" + " L".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)


def smooth(points: list[Point], span: Optional[float] = None) -> list[Point]:
    """An exponential moving average (debiased, as TensorBoard draws it) over about ``span`` points
    (default: a fiftieth of the curve), so a noisy long run shows its trend."""
    span = span or max(len(points) / 50, 2.0)
    alpha = 2.0 / (span + 1.0)
    avg = weight = 0.0
    out = []
    for x_, y_ in points:
        avg = (1 - alpha) * avg + alpha * y_
        weight = (1 - alpha) * weight + alpha
        out.append((x_, avg / weight))
    return out


def _open(chart_id: str, runs: str) -> str:
    return (f'<svg class="chart" data-chart="{esc(chart_id)}" data-runs="{esc(runs)}" viewBox="0 0 {WIDTH} {HEIGHT}"'
            f' role="img" preserveAspectRatio="xMidYMid meet">')


def _axes(sx: Scale, sy: Scale, xticks: list[float], yticks: list[float], x: Axis, y: Axis, ylog: bool) -> list[str]:
    out = [f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}"/>']
    for t in yticks:
        py = sy(t)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>'
                   f'<text class="tick" x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{esc(y.fmt(t))}</text>')
    for t in xticks:
        px = sx(t)
        out.append(f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
                   f'<text class="tick" x="{px:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                   f'{esc(x.fmt(t))}</text>')
    ylabel = y.label + (", log scale" if ylog else "")
    out.append(f'<text class="axis-label" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 6}" '
               f'text-anchor="middle">{esc(x.label)}</text>'
               f'<text class="axis-label" transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{esc(ylabel)}</text>')
    return out


# ----------------------------------------------------------------------------- histograms and bars
def histogram_chart(chart_id: str, bins: Sequence[tuple[float, float, int]], *, x_label: str,
                    y_label: str = "rows", markers: Sequence[tuple[float, str]] = (), run: str = "r0",
                    color: str = PALETTE[0]) -> str:
    """Bars for (low, high, count) bins on a numeric x axis; ``markers``: red vertical lines (value, label)."""
    if not bins:
        return '<div class="chart-empty">no data</div>'
    lo = min(min(a for a, _, _ in bins), *(v for v, _ in markers)) if markers else min(a for a, _, _ in bins)
    hi = max(max(b for _, b, _ in bins), *(v for v, _ in markers)) if markers else max(b for _, b, _ in bins)
    xticks = nice_ticks(lo, hi)
    top = max(c for _, _, c in bins) or 1
    yticks = nice_ticks(0, top)
    whole = [t for t in yticks if t == int(t)]  # counts: no tick at 2.5 rows
    if len(whole) >= 2 and whole[-1] >= top:
        yticks = whole
    sx = Scale(xticks[0], xticks[-1], LEFT, WIDTH - RIGHT)
    sy = Scale(0, yticks[-1], HEIGHT - BOTTOM, TOP)
    out = [_open(chart_id, run)]
    out += _axes(sx, sy, xticks, yticks, Axis(x_label), Axis(y_label), False)
    for a, b, count in bins:
        if b <= a:  # a single value: a thin bar centred on it
            a, b = a - (xticks[-1] - xticks[0]) / 80, b + (xticks[-1] - xticks[0]) / 80
        x0, x1, top = sx(a), sx(b), sy(count)
        out.append(f'<rect class="mark bar" data-run="{esc(run)}" x="{x0 + 0.5:.1f}" y="{top:.1f}" '
                   f'width="{max(x1 - x0 - 1, 1):.1f}" height="{sy(0) - top:.1f}" fill="{color}">'
                   f'<title>{esc(fmt_num(a))}–{esc(fmt_num(b))}: {count}</title></rect>')
    for value, label in markers:
        px = sx(value)
        out.append(f'<line class="limit" x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
                   f'<text class="limit-label" x="{px - 4:.1f}" y="{TOP + 12}" text-anchor="end">{esc(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(chart_id: str, bars: Sequence[tuple[str, float]], *, x_label: str, run: str = "r0",
              color: str = PALETTE[0], fmt: Callable[[float], str] = fmt_num) -> str:
    """Horizontal bars, one per (label, value), labels on the left and values at the bars' ends."""
    if not bars:
        return '<div class="chart-empty">no data</div>'
    row_h, left = 26, 170
    height = TOP + row_h * len(bars) + BOTTOM
    ticks = nice_ticks(0, max(v for _, v in bars) or 1)
    sx = Scale(0, ticks[-1], left, WIDTH - RIGHT - 40)
    out = [f'<svg class="chart" data-chart="{esc(chart_id)}" data-runs="{esc(run)}" viewBox="0 0 {WIDTH} {height}"'
           f' role="img">']
    out.extend(_x_grid(sx, ticks, height, fmt))
    for i, (label, value) in enumerate(bars):
        y0 = TOP + i * row_h + 4
        w = sx(value) - sx(0)
        out.append(f'<text class="bar-label" x="{left - 8}" y="{y0 + 13}" text-anchor="end">{esc(label)}</text>'
                   f'<rect class="mark bar" data-run="{esc(run)}" x="{left}" y="{y0}" width="{max(w, 1 if value else 0):.1f}"'
                   f' height="{row_h - 8}" fill="{color}"><title>{esc(label)}: {esc(fmt(value))}</title></rect>'
                   f'<text class="bar-value" x="{left + w + 6:.1f}" y="{y0 + 13}">{esc(fmt(value))}</text>')
    out.append(f'<text class="axis-label" x="{(left + WIDTH - RIGHT) / 2:.0f}" y="{height - 6}" text-anchor="middle">'
               f'{esc(x_label)}</text></svg>')
    return "".join(out)


def _x_grid(sx: "Scale", ticks: Sequence[float], height: float, fmt: Callable[[float], str]) -> list[str]:
    """Vertical grid lines with their tick labels under a horizontal-bar chart."""
    return [f'<line class="grid" x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{TOP}" y2="{height - BOTTOM}"/>'
            f'<text class="tick" x="{sx(t):.1f}" y="{height - BOTTOM + 16}" text-anchor="middle">{esc(fmt(t))}</text>'
            for t in ticks]


@dataclass
class StackedBar:
    label: str
    parts: list[tuple[str, float, str]]  # (name, value, colour), drawn left to right
    run: str = "r0"


def stacked_bars(chart_id: str, bars: Sequence[StackedBar], *, x_label: str,
                 fmt: Callable[[float], str] = fmt_num) -> str:
    """Horizontal bars made of parts (a memory plan's weights, optimizer state, activations ... beside the peak)."""
    totals = [sum(v for _, v, _ in b.parts) for b in bars]
    if not bars or not max(totals, default=0):
        return '<div class="chart-empty">no data</div>'
    row_h, left = 34, 120
    height = TOP + row_h * len(bars) + BOTTOM
    ticks = nice_ticks(0, max(totals))
    sx = Scale(0, ticks[-1], left, WIDTH - RIGHT - 50)
    runs = " ".join(sorted({b.run for b in bars}))
    out = [f'<svg class="chart" data-chart="{esc(chart_id)}" data-runs="{esc(runs)}" viewBox="0 0 {WIDTH} {height}"'
           f' role="img">']
    out.extend(_x_grid(sx, ticks, height, fmt))
    for i, (bar, total) in enumerate(zip(bars, totals)):
        y0 = TOP + i * row_h + 5
        x0 = sx(0)
        out.append(f'<text class="bar-label" x="{left - 8}" y="{y0 + 17}" text-anchor="end">{esc(bar.label)}</text>')
        for name, value, colour in bar.parts:
            w = sx(value) - sx(0)
            out.append(f'<rect class="mark bar" data-run="{esc(bar.run)}" x="{x0:.1f}" y="{y0}" width="{w:.1f}" '
                       f'height="{row_h - 10}" fill="{colour}"><title>{esc(name)}: {esc(fmt(value))}</title></rect>')
            x0 += w
        out.append(f'<text class="bar-value" x="{x0 + 6:.1f}" y="{y0 + 17}">{esc(fmt(total))}</text>')
    out.append(f'<text class="axis-label" x="{(left + WIDTH - RIGHT) / 2:.0f}" y="{height - 6}" text-anchor="middle">'
               f'{esc(x_label)}</text></svg>')
    return "".join(out)
