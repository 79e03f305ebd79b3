"""Small helpers shared by the data tests."""

from __future__ import annotations

import numpy as np

from mlxsft.config import DataConfig
from mlxsft.data.encode import encode_rows
from mlxsft.data.formats import to_conversation
from mlxsft.data.records import Conversation, RawRow
from mlxsft.data.templates import resolve_chat_template


def conv_of(row: dict) -> Conversation:
    conv, problems = to_conversation(RawRow(row, "test.jsonl", 1))
    assert not problems, problems
    return conv


def encode(tokenizer, row: dict, **cfg) -> tuple[np.ndarray, np.ndarray]:
    c = DataConfig(**cfg)
    template = resolve_chat_template(tokenizer, c.chat_template)
    return encode_rows([conv_of(row)], tokenizer, template, c)[0]


def supervised_runs(tokenizer, ids: np.ndarray, mask: np.ndarray) -> list[str]:
    """The decoded text of each contiguous run of supervised tokens."""
    runs, current = [], []
    for t, m in zip(ids.tolist(), mask.tolist()):
        if m:
            current.append(t)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(r) for r in runs]


def unsupervised_text(tokenizer, ids: np.ndarray, mask: np.ndarray) -> str:
    return tokenizer.decode([t for t, m in zip(ids.tolist(), mask.tolist()) if not m])
