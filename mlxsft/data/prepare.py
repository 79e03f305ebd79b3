"""Prepare one split for training: load and check rows, render, tokenize, mask, truncate or drop, count.

    from mlxsft.data import prepare_split
    train = prepare_split(cfg.data, tokenizer, "train")       # PreparedSplit(examples, stats, chat_template)

The result is cached (see ``cache.py``). Rows over ``max_seq_len`` are cut to it (``overlong=truncate``) or
left out (``drop``); rows left with no supervised token are left out too, and all three are counted in
``stats``. A split where no row has a supervised token is an error: training on it would learn nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlxsft.config import DataConfig
from mlxsft.data.cache import load_cached, save_cached, split_key
from mlxsft.data.encode import encode_rows
from mlxsft.data.load import load_conversations, load_valid_conversations
from mlxsft.data.records import Conversation, Example, PreparedSplit
from mlxsft.data.templates import resolve_chat_template
from mlxsft.errors import DataError


def prepare_split(cfg: DataConfig, tokenizer: Any, split: str, chat_template: str | None = None, *,
                  skip_invalid: bool = False) -> PreparedSplit:
    """``skip_invalid`` (``data stats``): leave malformed rows out, counted in ``stats["invalid_rows"]``."""
    template = chat_template or resolve_chat_template(tokenizer, cfg.chat_template)
    invalid = 0
    if skip_invalid:
        convs, invalid = load_valid_conversations(cfg.data, split, cfg)
    else:
        convs = load_conversations(cfg.data, split, cfg)
    key = split_key(convs, tokenizer, template, cfg)
    cached = load_cached(key)
    if cached is not None:
        examples, stats = cached
    else:
        examples, stats = fit_rows(encode_rows(convs, tokenizer, template, cfg), convs, cfg)
        save_cached(key, examples, stats)
    # key: the content of this split as tokenized (rows, template, tokenizer, lengths): a resume pins it
    stats = {**stats, "split": split, "source": cfg.data or "bundled", "cached": cached is not None, "key": key,
             "invalid_rows": invalid}
    if not examples:
        raise _nothing_to_learn(stats, cfg)
    return PreparedSplit(examples=examples, stats=stats, chat_template=template)


def fit_rows(pairs: list[tuple[np.ndarray, np.ndarray]], convs: list[Conversation],
             cfg: DataConfig) -> tuple[list[Example], dict]:
    """Apply ``max_seq_len`` / ``overlong`` and drop rows with nothing to learn; return examples and counts."""
    examples: list[Example] = []
    truncated = dropped = unsupervised = 0
    for row, (ids, mask) in enumerate(pairs):
        if len(ids) > cfg.max_seq_len:
            if cfg.overlong == "drop":
                dropped += 1
                continue
            ids, mask = ids[: cfg.max_seq_len], mask[: cfg.max_seq_len]
            truncated += 1
        if not mask.any():
            unsupervised += 1
            continue
        examples.append(Example(input_ids=ids, loss_mask=mask, row=row))
    lengths = np.asarray([len(e.input_ids) for e in examples], dtype=np.int64)
    supervised = int(sum(int(e.loss_mask.sum()) for e in examples))
    total = int(lengths.sum())
    turns = [sum(m["role"] == "assistant" for m in c.messages) for c in convs]
    stats = {
        "rows_in": len(pairs),
        "rows": len(examples),
        "truncated": truncated,
        "dropped_overlong": dropped,
        "no_supervised_rows": unsupervised,
        "supervised_tokens": supervised,
        "total_tokens": total,
        "supervised_fraction": supervised / total if total else 0.0,
        "max_len": int(lengths.max()) if len(lengths) else 0,
        "mean_len": float(lengths.mean()) if len(lengths) else 0.0,
        "assistant_turns": int(sum(turns)),
        "multi_turn_rows": int(sum(t > 1 for t in turns)),
        "max_seq_len": cfg.max_seq_len,
        "train_on": cfg.train_on,
    }
    return examples, stats


def _nothing_to_learn(stats: dict, cfg: DataConfig) -> DataError:
    where = f"{stats['source']} [{stats['split']}]"
    if stats["dropped_overlong"] == stats["rows_in"]:
        return DataError(f"{where}: every row is longer than max_seq_len={cfg.max_seq_len} and was dropped",
                         hint="raise --max-seq-len or use --overlong truncate")
    return DataError(f"{where}: no row has a supervised token ({stats['no_supervised_rows']} of {stats['rows_in']} "
                     f"rows have none with train_on={cfg.train_on}, max_seq_len={cfg.max_seq_len})",
                     hint="`mlxsft data inspect` shows the masks; raise --max-seq-len or change --train-on")
