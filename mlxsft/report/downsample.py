"""Fewer points for a long curve, keeping its spikes: min/max-preserving buckets.

    points = min_max_buckets(points, buckets=400)    # at most 2 * 400 (+2) points, in x order

A 10,000-step run logged every step is 10,000 points per curve; a chart 600 pixels wide shows at most a few
hundred of them. Averaging would hide a loss spike or a grad-norm blow-up, which is what a reader looks for, so
each bucket keeps its lowest and its highest point (in their x order), and the first and last points stay.
"""

from __future__ import annotations

Point = tuple[float, float]


def min_max_buckets(points: list[Point], buckets: int = 400) -> list[Point]:
    """``points`` (sorted by x) cut to at most ``2 * buckets`` points plus the two ends."""
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {buckets}")
    n = len(points)
    if n <= 2 * buckets + 2:
        return list(points)
    inner = points[1:-1]
    size = len(inner) / buckets
    out = [points[0]]
    for b in range(buckets):
        chunk = inner[int(b * size): int((b + 1) * size)]
        if not chunk:
            continue
        lo = min(range(len(chunk)), key=lambda i: chunk[i][1])
        hi = max(range(len(chunk)), key=lambda i: chunk[i][1])
        out.extend(chunk[i] for i in sorted({lo, hi}))
    out.append(points[-1])
    return out
