"""How curation reports progress: a callback taking a ``Tick``. The library never prints; the CLI draws it.

    def show(t: Tick) -> None:
        print(t.stage, t.done, t.total, t.counts)
    distill(teacher, options, progress=show)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class Tick:
    """``done`` of ``total`` units of ``stage`` (prompts, rows) are finished; ``counts`` are running totals."""

    stage: str
    done: int
    total: int
    counts: dict[str, float] = field(default_factory=dict)


Progress = Callable[[Tick], None]


def no_progress(_: Tick) -> None:
    pass


def progress_or_silent(progress: Optional[Progress]) -> Progress:
    return progress or no_progress
