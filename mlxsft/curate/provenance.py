"""Provenance: the ``meta`` object every curated row carries, and the check that a resumed output is the same job.

    meta = {"step": "distill", "prompt_id": ..., "source": "prompts.jsonl:3", "teacher": ..., "sampling": {...},
            "created": now_iso(), "mlxsft": "0.1.0"}

Training ignores ``meta`` (the data loader reads only the fields of a row's format), so curated files train as they
are, and ``mlxsft data filter`` copies rows byte for byte, meta included.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from mlxsft.curate.jsonl import written_by_mlxsft
from mlxsft.errors import ConfigError


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_same_job(out: Path, step: str, expected: dict[str, object]) -> Callable[[int, dict], None]:
    """``on_row`` for ResumableOutput: refuse to resume an output written by another kind of job."""

    def check(line: int, row: dict) -> None:
        meta = row.get("meta")
        if not isinstance(meta, dict):
            meta = {}
        got = {k: meta.get(k) for k in expected}
        if meta.get("step") != step or got != expected:
            theirs = f"{meta['step']}: " + ", ".join(f"{k} {v!r}" for k, v in got.items()) if meta.get("step") \
                else "a row without mlxsft's meta"
            ours = f"{step}: " + ", ".join(f"{k} {v!r}" for k, v in expected.items())
            # --overwrite empties only a file mlxsft wrote: never suggest it for anyone else's
            hint = ("use another --out, or --overwrite to start it again (it empties only an output mlxsft wrote)"
                    if written_by_mlxsft(row) else "use another --out")
            raise ConfigError(f"{out}:{line}: this output was written by another job ({theirs}), not this one "
                              f"({ours})", hint=hint)

    return check
