"""Write a folder all-or-nothing: build it under a temporary name beside the target, then rename.

    with atomic_dir(Path("out/model")) as tmp:
        write_files(tmp)          # any exception (or Ctrl-C) removes tmp and leaves no trace

The temporary folder is a hidden sibling (``.model.tmp-XXXX``) so the final ``rename`` stays on one
filesystem and is atomic. Parent folders created for the target are removed again on failure.

A rename is atomic, not durable: after a power loss the new name can exist while the data written before it
never reached the disk (zero-length or garbage files). So every file and folder of the temp folder is
fsynced before the rename, and the parent folder after it. ``marker`` names an empty file written after
all the others are synced: a reader that finds it knows the rest is on disk (the model cache relies on it).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
