"""Where converted models live: a content-keyed cache under ``$MLXSFT_CACHE`` (default ``~/.cache/mlxsft``).

    models/<name>-<key>-<dtype>/   an mlx-lm model folder, renamed into place only once complete
    gguf/                          GGUF files assembled from the embedded packages

An entry counts only with its ``.complete`` marker, written after every file of the entry is fsynced
(``atomic.py``). One without it (cut short by a power loss, or written by an older mlxsft, which wrote no
marker and synced nothing) is treated as absent: it is removed and converted again.

The key hashes what the conversion reads, not where it lives, so a copied or re-downloaded model hits the
same entry and an edited one misses. Files up to 256 MiB are hashed in full (a SmolLM2 GGUF takes ~0.2 s);
larger files hash their size, mtime and three 1 MiB samples (head, middle, tail) so a 15 GB checkpoint
costs milliseconds. That partial hash can miss an in-place edit that keeps size and mtime; delete the cache
entry (or the whole cache) to force a re-conversion. The key also covers the mlx-lm version, since its
model code decides how weights are sanitized.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

FULL_HASH_LIMIT = 256 * 2**20
SAMPLE = 2**20
KEY_VERSION = "1"  # bump when the conversion itself changes
COMPLETE = ".complete"  # the marker of a finished, synced entry


def cache_root() -> Path:
    return Path(os.environ.get("MLXSFT_CACHE") or Path.home() / ".cache" / "mlxsft").expanduser()


def models_dir() -> Path:
    return cache_root() / "models"


def content_key(path: Path) -> str:
    """A 16-hex-digit key of a file, or of a folder's top-level files (names, sizes, contents)."""
    import mlx_lm

    h = hashlib.sha256(f"mlxsft-convert-{KEY_VERSION}-mlx_lm-{mlx_lm.__version__}".encode())
    files = [path] if path.is_file() else sorted(
        f for f in path.iterdir() if f.is_file() and not f.name.startswith(".") and f.name != "README.md")
    for f in files:
        h.update(f"\0{f.name if path.is_dir() else ''}\0".encode())
        h.update(_file_digest(f).encode())
    return h.hexdigest()[:16]


_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> digest: hash each file once per process


def _file_digest(f: Path) -> str:
    st = f.stat()  # follows Hub-cache symlinks to the blob
    memo = (str(f.resolve()), st.st_size, st.st_mtime_ns)
    if memo in _digests:
        return _digests[memo]
    h = hashlib.sha256(str(st.st_size).encode())
    with f.open("rb") as fh:
        if st.st_size <= FULL_HASH_LIMIT:
            for block in iter(lambda: fh.read(2**20), b""):
                h.update(block)
        else:
            h.update(str(st.st_mtime_ns).encode())
            for offset in (0, st.st_size // 2, st.st_size - SAMPLE):
                fh.seek(offset)
                h.update(fh.read(SAMPLE))
    _digests[memo] = h.hexdigest()
    return _digests[memo]


def entry_dir(name: str, key: str, dtype: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    return models_dir() / f"{safe}-{key}-{dtype}"


def is_complete(entry: Path) -> bool:
    return (entry / COMPLETE).is_file()


def discard(entry: Path) -> None:
    """Remove an entry that is not complete. It is renamed aside first, so that a concurrent process sees
    either the whole folder or none (and one that already moved it is not an error)."""
    if not entry.is_dir():
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{entry.name}.stale-", dir=entry.parent))
    try:
        os.rename(entry, aside / entry.name)
    except FileNotFoundError:
        pass
    shutil.rmtree(aside, ignore_errors=True)


def find_entry(key: str) -> Path | None:
    """Any complete conversion of this content, whatever its dtype (the tokenizer is the same in all)."""
    root = models_dir()
    if not root.is_dir():
        return None
    hits = sorted(p for p in root.glob(f"*-{key}-*") if not p.name.startswith(".") and is_complete(p))
    return hits[0] if hits else None
