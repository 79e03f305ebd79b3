"""What every tracker module provides, and the little they share: the run it logs, the numbers it logs.

    tracker = mlxsft.trackers.wandb.start(TrackerRun(run_dir, "sft-20261201-1200", "mlxsft", cfg.to_dict()))
    tracker.log(5, {"train_loss": 1.2, "learning_rate": 1e-3})   # from the trackers' thread
    tracker.close(ok=True)
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol

# In every record, but not a curve: the step is the x axis, the total a constant.
NOT_LOGGED = ("step", "total_steps")


@dataclass
class TrackerRun:
    run_dir: Path
    name: str  # the run folder's name: the run's name in every tracker
    project: str  # wandb project, mlflow experiment, trackio project
    config: dict  # the resolved config (Config.to_dict())
    resumed_at: Optional[int] = None  # the checkpoint step a resume continues from; None for a new run
    saved_id: Optional[str] = None  # this tracker's run id from an earlier start of the run (trackers.json)


class Tracker(Protocol):
    id: Optional[str]  # what a resume needs to continue the same tracker run (None: nothing)
    where: str  # one line for the user: where the logs are and how to look at them

    def log(self, step: int, values: dict[str, float]) -> None: ...

    def close(self, ok: bool) -> None: ...


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl record's numbers, under their metrics.jsonl names (``step`` and ``total_steps`` aside)."""
    return {k: float(v) for k, v in record.items()
            if k not in NOT_LOGGED and isinstance(v, (int, float)) and not isinstance(v, bool)}


def finite(values: dict[str, float]) -> dict[str, float]:
    """For trackers that refuse NaN/inf (a skipped non-finite step's gradient norm)."""
    return {k: v for k, v in values.items() if math.isfinite(v)}


@contextmanager
def env_defaults(**values: str) -> Iterator[None]:
    """Set these environment variables where the user has not, for the duration only (a library that reads
    them once, at import or at start-up, keeps what it read)."""
    added = {k: v for k, v in values.items() if not os.environ.get(k)}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def config_text(config: dict) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)
