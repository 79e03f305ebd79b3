"""``metrics.jsonl``: one JSON line per report or evaluation, flushed as it is written.

    log = MetricsLog(run_dir / "metrics.jsonl", truncate_after_step=resumed_step)
    log.write({"step": 5, "train_loss": 1.2})   # also=trackers: each record goes on to them too
    log.read()                              # [{...}, ...]
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

from mlxsft.files import atomic_write_text, disk_full

class MetricsLog:
    """Append-only ``metrics.jsonl``; each line is flushed so a crash loses at most the last one."""

    FIELDS = ("step", "epoch", "train_loss", "val_loss", "learning_rate", "grad_norm", "tokens_per_sec",
              "trained_tokens", "peak_memory_gb", "elapsed_s")

    def __init__(self, path: Path, truncate_after_step: int | None = None, also: Any = None):
        self.path = Path(path)
        self.also = also  # more sinks of each record (mlxsft.trackers.Trackers: --report-to), or None
        if truncate_after_step is not None and self.path.exists():
            # On resume, drop lines logged after the checkpoint we continue from.
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and _step_of(ln) <= truncate_after_step]
            atomic_write_text(self.path, "".join(k + "\n" for k in keep))

    def write(self, record: dict[str, Any]) -> None:
        row = {k: record.get(k) for k in self.FIELDS}
        row.update({k: v for k, v in record.items() if k not in row})
        line = json.dumps(row) + "\n"
        try:
            with open(self.path, "a") as f:
                f.write(line)
                f.flush()
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full(self.path, len(line), e) from None
            raise
        if self.also is not None:
            self.also.write(row)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 60


