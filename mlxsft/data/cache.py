"""On-disk cache of prepared splits, so a second run (or ``train --resume``) skips rendering and tokenizing.

    from mlxsft.data.cache import split_key, load_cached, save_cached
    key = split_key(convs, tokenizer, template, cfg.data)

Entries live in ``$MLXSFT_CACHE/data/<key>.npz`` (default ``~/.cache/mlxsft``). The key covers everything that
changes the tokens or masks: the normalised rows, the tokenizer (its full serialised form), the template and its
kwargs, ``max_seq_len``, ``overlong`` and ``train_on``. A cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mlxsft.config import DataConfig
from mlxsft.data.records import Conversation, Example

CACHE_VERSION = 1  # bump when encoding changes, so old entries are never reused


def cache_dir() -> Path:
    return Path(os.environ.get("MLXSFT_CACHE") or "~/.cache/mlxsft").expanduser() / "data"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        h.update(backend.to_str().encode())
    else:  # a slow tokenizer: its vocabulary stands in for it
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    for name in ("bos_token", "eos_token", "pad_token"):
        h.update(str(getattr(tokenizer, name, None)).encode())
    return h.hexdigest()


def split_key(convs: list[Conversation], tokenizer: Any, template: str, cfg: DataConfig) -> str:
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "template": template, "kwargs": cfg.chat_template_kwargs,
                                   "max_seq_len": cfg.max_seq_len, "overlong": cfg.overlong,
                                   "train_on": cfg.train_on}, sort_keys=True, default=str).encode())
    h.update(tokenizer_fingerprint(tokenizer).encode())
    for c in convs:
        h.update(json.dumps([c.messages, c.tools, c.text, c.prompt_messages], sort_keys=True, default=str,
                            ensure_ascii=False).encode())
    return h.hexdigest()[:32]


def load_cached(key: str) -> tuple[list[Example], dict] | None:
    path = cache_dir() / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            ids, mask, lengths, rows = z["ids"], z["mask"], z["lengths"], z["rows"]
            stats = json.loads(str(z["stats"]))
    except Exception:  # truncated or foreign file: recompute
        return None
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    examples = [Example(ids[a:b].copy(), mask[a:b].copy(), int(r)) for a, b, r in zip(bounds[:-1], bounds[1:], rows)]
    return examples, stats


def save_cached(key: str, examples: list[Example], stats: dict) -> None:
    folder = cache_dir()
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, ids=_cat([e.input_ids for e in examples], np.int32),
                     mask=_cat([e.loss_mask for e in examples], np.int8),
                     lengths=np.asarray([len(e.input_ids) for e in examples], dtype=np.int64),
                     rows=np.asarray([e.row for e in examples], dtype=np.int64),
                     stats=np.asarray(json.dumps(stats)))
        os.replace(tmp, folder / f"{key}.npz")  # atomic: a reader never sees half a file
    except OSError:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _cat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)
