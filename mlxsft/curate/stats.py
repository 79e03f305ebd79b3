"""A summary of a list of scores: count, mean, quartiles and a histogram, for ``best-of-k`` reports.

    s = summarize([0.0, 1.0, 1.0, 0.5])
    s.median, s.histogram          # 0.75, [(0.0, 0.0, 1), (0.5, 0.5, 1), (1.0, 1.0, 2)]

Scores may be ``None`` (a judge reply that held no rating, an empty answer under ``logprob``): they are counted
in ``missing`` and left out of the numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

MAX_DISTINCT = 10  # up to this many distinct values: one bar each (reference scores are 0, 0.5, 1)
BINS = 10


@dataclass
class ScoreSummary:
    n: int = 0
    missing: int = 0
    mean: Optional[float] = None
    min: Optional[float] = None
    p25: Optional[float] = None
    median: Optional[float] = None
    p75: Optional[float] = None
    max: Optional[float] = None
    histogram: list[tuple[float, float, int]] = field(default_factory=list)  # (low, high, count); low == high: a value

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(scores: Iterable[Optional[float]]) -> ScoreSummary:
    values, missing = [], 0
    for s in scores:
        if s is None or not math.isfinite(s):
            missing += 1
        else:
            values.append(float(s))
    if not values:
        return ScoreSummary(missing=missing)
    values.sort()
    return ScoreSummary(n=len(values), missing=missing, mean=sum(values) / len(values), min=values[0],
                        p25=_quantile(values, 0.25), median=_quantile(values, 0.5), p75=_quantile(values, 0.75),
                        max=values[-1], histogram=_histogram(values))


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _histogram(sorted_values: list[float]) -> list[tuple[float, float, int]]:
    distinct = sorted(set(sorted_values))
    if len(distinct) <= MAX_DISTINCT:
        return [(v, v, sorted_values.count(v)) for v in distinct]
    lo, hi = sorted_values[0], sorted_values[-1]
    width = (hi - lo) / BINS
    counts = [0] * BINS
    for v in sorted_values:
        counts[min(BINS - 1, int((v - lo) / width))] += 1
    return [(lo + i * width, lo + (i + 1) * width, c) for i, c in enumerate(counts)]


def finite_or_none(x: Optional[float]) -> Optional[float]:
    """For JSON: NaN and infinities become null."""
    return float(x) if x is not None and math.isfinite(x) else None
