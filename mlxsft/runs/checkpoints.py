"""Checkpoint folders, written atomically by both backends: ``checkpoints/step-N`` and the ``latest`` pointer.

    write_checkpoint(run_dir, step, lambda tmp: write_files(tmp), need_bytes=n)
    latest_checkpoint(run_dir)           # the newest complete one, or a RunError

A kill at any point leaves the previous checkpoint loadable; a step written again is swapped in by
rename, never deleted first; ``latest`` naming a missing folder falls back to the newest complete step.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Callable

from mlxsft.errors import RunError
from mlxsft.files import MARGIN_BYTES, atomic_write_text, check_free_space, disk_full, folder_bytes, free_bytes, sync_dir

def write_checkpoint(run_dir: Path, step: int, write: Callable[[Path], None], keep_last: int = 2,
                     need_bytes: int = 0) -> Path:
    """Write a checkpoint folder atomically; both backends' checkpoints go through here.

    ``write(tmp)`` fills ``checkpoints/.tmp-step-N``; then every file is fsynced, the folder renamed to
    ``step-N``, ``checkpoints/latest`` replaced, and all but the newest ``keep_last`` removed. A kill at any
    point leaves the previous checkpoint loadable. ``need_bytes`` (the caller's estimate of what it will
    write, or else the size of the previous checkpoint) must be free first; a write that still runs out of
    disk removes its partial folder and raises a ``RunError``.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = root / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    previous = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    need = max(need_bytes, folder_bytes(previous[-1]) if previous else 0)
    check_free_space(root, need)
    try:
        tmp.mkdir()
        write(tmp)
        inputs = Path(run_dir) / "inputs.json"  # what this step was trained on (mlxsft.train.input_keys)
        if inputs.is_file():
            shutil.copyfile(inputs, tmp / inputs.name)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    except Exception as e:  # a full disk shows up as OSError, RuntimeError or SafetensorError, by writer
        shutil.rmtree(tmp, ignore_errors=True)
        if _out_of_space(e, root, need):
            raise disk_full(root, need, e) from None
        raise
    final = root / name
    old = root / f".old-{name}"
    if final.exists():  # the same step again (a resume from an older checkpoint): swap, never delete first
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    sync_dir(root)  # the rename itself survives a power cut, not only a kill
    atomic_write_text(root / "latest", name + "\n")
    shutil.rmtree(old, ignore_errors=True)
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for old in done[:-keep_last]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _out_of_space(e: BaseException, root: Path, need: int) -> bool:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e).lower()
    return "no space" in text or "unable to write" in text or free_bytes(root) < need + MARGIN_BYTES


def _complete(folder: Path) -> bool:
    return folder.is_dir() and (folder / "state.json").is_file()


def _step_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")) if root.is_dir() else []


def find_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a resume continues from: the one ``latest`` names, else the newest complete ``step-*``.

    ``latest`` can name a folder that is gone only after a crash between the two renames of a swap (see
    ``write_checkpoint``); ``recover_checkpoints`` puts the swapped-out copy back first.
    """
    root = Path(run_dir) / "checkpoints"
    ptr = root / "latest"
    if ptr.is_file():
        try:
            named = root / ptr.read_text().strip()
        except OSError:
            named = None
        if named is not None and named.parent == root and _complete(named):
            return named
        old = root / f".old-{named.name}" if named is not None else None
        if old is not None and _complete(old):
            return old
    done = [p for p in _step_folders(root) if _complete(p)]
    return done[-1] if done else None


def recover_checkpoints(run_dir: Path) -> None:
    """After a kill inside a swap: put a swapped-out ``.old-step-N`` back when ``step-N`` is missing or torn."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return
    for old in root.glob(".old-step-*"):
        final = root / old.name[len(".old-"):]
        if _complete(final):
            shutil.rmtree(old, ignore_errors=True)
        elif _complete(old):
            shutil.rmtree(final, ignore_errors=True)
            os.replace(old, final)
            sync_dir(root)
    found = find_checkpoint(run_dir)
    ptr = root / "latest"
    if found is not None and found.parent == root and (not ptr.is_file() or ptr.read_text().strip() != found.name):
        atomic_write_text(ptr, found.name + "\n")


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint folder of a run (``find_checkpoint``), or a RunError."""
    found = find_checkpoint(run_dir)
    if found is None:
        raise RunError(f"{run_dir}: no checkpoint to resume from")
    return found
