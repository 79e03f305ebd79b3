"""Every atomic write and disk-space check, in one place: a kill leaves the old file or the new one.

    atomic_write_json(path, obj)          # temp name beside it, fsync, rename, fsync the folder
    with atomic_dir(Path("out/model")) as tmp:
        write_files(tmp)                  # a folder all-or-nothing; any exception (or Ctrl-C) leaves no trace
    check_free_space(folder, need_bytes)  # a RunError saying how much is needed and free, before writing

A rename is atomic, not durable: after a power loss the new name can exist while the data written before
it never reached the disk. So files are fsynced before their rename and the parent folder after it; a
folder's ``marker`` (an empty file written after all the others are synced) tells a reader the rest is on
disk (the model cache relies on it). A full disk is reported as a ``RunError`` naming what, how much is
needed and how much is free, never as a half-written file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlxsft.errors import RunError

MARGIN_BYTES = 64 << 20  # room left for metrics, logs and the filesystem itself


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_dir(path.parent)  # the rename itself survives a power cut, not only a kill
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, len(data), e) from None
        raise


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def disk_full(path: Path, need_bytes: int, cause: BaseException | None = None, margin: int = 0) -> RunError:
    """The error for a write that does not fit: what, how much is needed and free, what to do."""
    free = free_bytes(path)
    why = f" ({cause})" if cause is not None else ""
    plus = f" (+{_gb(margin)} kept free)" if margin else ""
    return RunError(f"{path}: not enough disk space: {_gb(need_bytes)} needed{plus}, {_gb(free)} free{why}",
                    hint="free some space (older runs in runs/, the model cache in ~/.cache/mlxsft) or use "
                         "another --out; nothing was left half-written: continue with --resume once there is room")


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def check_free_space(path: Path, need_bytes: int) -> None:
    """Refuse, before writing, a write of ``need_bytes`` that would leave less than a small margin free."""
    if free_bytes(path) < need_bytes + MARGIN_BYTES:
        raise disk_full(path, need_bytes, margin=MARGIN_BYTES)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextmanager
def atomic_dir(final: Path, *, exist_ok: bool = False, marker: str | None = None) -> Iterator[Path]:
    """Yield a temp folder that becomes ``final`` on success, its contents synced to disk first.

    ``final`` may exist only as an empty folder (it is replaced). With ``exist_ok`` a concurrent writer
    that finished first wins and our copy is discarded: used by the cache, whose entries are equivalent.
    """
    final = Path(final)
    created = _make_parents(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        sync_tree(tmp)
        if marker is not None:
            (tmp / marker).touch()
            sync_file(tmp / marker)
            sync_dir(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private (0700); give it a normal folder's mode
        try:
            os.rename(tmp, final)  # POSIX: replaces an empty folder in one step
        except OSError:
            if not (exist_ok and final.is_dir() and any(final.iterdir())):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        for folder in dict.fromkeys([final.parent, *(d.parent for d in created)]):
            sync_dir(folder)  # the new names themselves
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:
                break
        raise


def sync_tree(folder: Path) -> None:
    """fsync every file under ``folder``, then each folder, deepest first."""
    for root, _, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                sync_file(path)
        sync_dir(Path(root))


def sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _fsync(fd)
    finally:
        os.close(fd)


def sync_dir(folder: Path) -> None:
    """fsync a folder (its entries: the names of new and renamed files). A no-op where folders cannot be
    opened (Windows) or synced (some network filesystems)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        _fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync(fd: int) -> None:
    os.fsync(fd)
    if sys.platform == "darwin":  # macOS's fsync leaves the data in the drive's cache; F_FULLFSYNC flushes it
        import fcntl

        try:
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
        except OSError:
            pass  # not supported by this filesystem: fsync is all there is


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (outermost first)."""
    missing: list[Path] = []
    d = folder
    while not d.exists():
        missing.append(d)
        d = d.parent
    missing.reverse()
    for d in missing:
        d.mkdir()
    return missing


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask
