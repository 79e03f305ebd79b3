"""What a resume pins about the base model: a content key of its files and, for a Hub model, its revision.

    key = model_content_key(Path("model.gguf"))       # 'sha256:…' of names, sizes and sampled bytes
    hub_revision(Path("~/.cache/huggingface/hub/models--org--name/snapshots/abc123"))   # 'abc123'

Hashing every byte of a 14 GB model on each resume would take minutes, so the key reads each file's name,
size, its first and last MiB and 16 slices spread over the rest: a re-download, a re-quantization or an
edited config changes it; it is not a cryptographic proof that no single byte in the middle changed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

_EDGE = 1 << 20
_SLICE = 1 << 16
_SLICES = 16


def _file_digest(h: "hashlib._Hash", path: Path) -> None:
    size = path.stat().st_size
    h.update(f"{path.name}\0{size}\0".encode())
    with open(path, "rb") as f:
        if size <= 2 * _EDGE + _SLICES * _SLICE:
            h.update(f.read())
            return
        h.update(f.read(_EDGE))
        span = size - 2 * _EDGE
        for i in range(_SLICES):
            f.seek(_EDGE + span * i // _SLICES)
            h.update(f.read(_SLICE))
        f.seek(size - _EDGE)
        h.update(f.read(_EDGE))


def model_content_key(path: Path) -> str:
    """A key that changes when the model's files change (a file, or every visible file of a folder)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
    for f in files:
        _file_digest(h, f)
    return "sha256:" + h.hexdigest()[:32]


def hub_revision(path: Path) -> Optional[str]:
    """The commit of a huggingface_hub snapshot folder (``…/snapshots/<commit>``), else None."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.parent.name == "snapshots":
            return p.name
    return None
