"""Mean and spread of a metric over seeds, for the experiments' tables and plots.

    s = spread([30, 33, 31])
    s.mean, s.sd, s.text()          # 31.33, 1.53, "31.3 ± 1.5"

The spread is the sample standard deviation (n - 1 in the denominator); a single seed has none (``sd`` None).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional


@dataclass
class Spread:
    mean: Optional[float]
    sd: Optional[float]
    n: int
    min: Optional[float]
    max: Optional[float]
    values: list[float]

    def text(self, digits: int = 1, sd: bool = True) -> str:
        if self.mean is None:
            return "—"
        if self.sd is None or not sd:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spread(values: Iterable[Optional[float]]) -> Spread:
    """Mean, sample standard deviation, min and max of the finite values (None and NaN are left out)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return Spread(None, None, 0, None, None, [])
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return Spread(mean, sd, len(xs), min(xs), max(xs), xs)
