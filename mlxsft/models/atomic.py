"""Write a folder all-or-nothing: build it under a temporary name beside the target, then rename.

    with atomic_dir(Path("out/model")) as tmp:
        write_files(tmp)          # any exception (or Ctrl-C) removes tmp and leaves no trace

The temporary folder is a hidden sibling (``.model.tmp-XXXX``) so the final ``rename`` stays on one
filesystem and is atomic. Parent folders created for the target are removed again on failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_dir(final: Path, *, exist_ok: bool = False) -> Iterator[Path]:
    """Yield a temp folder that becomes ``final`` on success.

    ``final`` may exist only as an empty folder (it is replaced). With ``exist_ok`` a concurrent writer
    that finished first wins and our copy is discarded: used by the cache, whose entries are equivalent.
    """
    final = Path(final)
    created = _make_parents(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private (0700); give it a normal folder's mode
        try:
            os.rename(tmp, final)  # POSIX: replaces an empty folder in one step
        except OSError:
            if not (exist_ok and final.is_dir() and any(final.iterdir())):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:
                break
        raise


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
