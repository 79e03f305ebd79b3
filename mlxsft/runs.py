"""Run folders: creation, the single-writer lock, atomic writes and ``metrics.jsonl``.

A run folder holds everything a training run produces::

    runs/sft-20261129-0712/
      config.yaml  chat_template.jinja  adapter_config.json  adapters.safetensors
      metrics.jsonl  loss.png  best/  checkpoints/step-00000100/  checkpoints/latest  .lock

Every file that matters is written to a temporary name and renamed into place, so a kill at any
moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from mlxsft.errors import RunError


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    return Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool = False) -> Path:
    """Create (or reopen, when resuming) a run folder; refuse to clobber someone else's files."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: --out exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise RunError(f"{out}: run folder is not empty", hint="use --resume to continue it, or another --out")
        shutil.rmtree(out)
    if resume and not (out / "checkpoints" / "latest").is_file():
        raise RunError(f"{out}: nothing to resume (no checkpoints/latest)")
    out.mkdir(parents=True, exist_ok=True)
    return out


class RunLock:
    """An exclusive lock on a run folder, so two trainings never write into the same one."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        import fcntl

        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise RunError(f"{self.path.parent}: another training is using this run folder") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class MetricsLog:
    """Append-only ``metrics.jsonl``; each line is flushed so a crash loses at most the last one."""

    FIELDS = ("step", "epoch", "train_loss", "val_loss", "learning_rate", "grad_norm", "tokens_per_sec",
              "trained_tokens", "peak_memory_gb", "elapsed_s")

    def __init__(self, path: Path, truncate_after_step: int | None = None):
        self.path = Path(path)
        if truncate_after_step is not None and self.path.exists():
            # On resume, drop lines logged after the checkpoint we continue from.
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and _step_of(ln) <= truncate_after_step]
            atomic_write_text(self.path, "".join(k + "\n" for k in keep))

    def write(self, record: dict[str, Any]) -> None:
        row = {k: record.get(k) for k in self.FIELDS}
        row.update({k: v for k, v in record.items() if k not in row})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 60


def write_checkpoint(run_dir: Path, step: int, write: Callable[[Path], None], keep_last: int = 2) -> Path:
    """Write a checkpoint folder atomically; both backends' checkpoints go through here.

    ``write(tmp)`` fills ``checkpoints/.tmp-step-N``; then every file is fsynced, the folder renamed to
    ``step-N``, ``checkpoints/latest`` replaced, and all but the newest ``keep_last`` removed. A kill at any
    point leaves the previous checkpoint loadable.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = root / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    write(tmp)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(root / "latest", name + "\n")
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for old in done[:-keep_last]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint folder of a run."""
    ptr = Path(run_dir) / "checkpoints" / "latest"
    if not ptr.is_file():
        raise RunError(f"{run_dir}: no checkpoint to resume from")
    path = ptr.parent / ptr.read_text().strip()
    if not (path / "state.json").is_file():
        raise RunError(f"{path}: checkpoint is incomplete")
    return path
