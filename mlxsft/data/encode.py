"""Render and tokenize rows, in batches, into full-length ``(input_ids, loss_mask)`` pairs.

    from mlxsft.data.encode import encode_rows
    pairs = encode_rows(conversations, tokenizer, template, cfg.data)   # [(int32 ids, int8 mask), ...]

Chat rows are rendered once as a whole and tokenized with character offsets, so the ids are exactly what the
model sees at inference (tokenizing pieces separately can merge or split tokens differently at the seams).
Plain ``text`` rows are tokenized as-is with the tokenizer's own special tokens (BOS where the model uses one),
plus EOS so the model learns where a document ends; every token is supervised. ``loss_mask[0]`` is always 0:
the first token is never predicted, and in a packed sequence it must not be predicted from the previous row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlxsft.config import DataConfig
from mlxsft.data.masks import spans_to_mask, supervised_spans
from mlxsft.data.records import Conversation
from mlxsft.data.templates import TemplateRenderer
from mlxsft.errors import DataError

CHUNK = 1024  # rows per tokenizer call: big enough to use the Rust tokenizer's threads, small enough for memory


def encode_rows(convs: list[Conversation], tokenizer: Any, template: str,
                cfg: DataConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    renderer = TemplateRenderer(tokenizer, template, cfg.chat_template_kwargs)
    out: list[Any] = [None] * len(convs)
    chat: list[tuple[int, str, list[tuple[int, int]]]] = []
    plain: list[tuple[int, str]] = []
    for i, conv in enumerate(convs):
        if conv.text is not None:
            plain.append((i, conv.text))
            continue
        try:
            text, spans = supervised_spans(renderer, conv, cfg.train_on)
        except Exception as e:  # the template raised (e.g. Gemma's "roles must alternate"): name the row
            raise located(conv.source, "messages", f"chat template failed: {type(e).__name__}: {e}") from None
        chat.append((i, text, spans))
    for lo in range(0, len(chat), CHUNK):
        part = chat[lo: lo + CHUNK]
        for (i, text, spans), (ids, mask) in zip(part, _tokenize_with_masks(tokenizer, [p[1] for p in part],
                                                                           [p[2] for p in part])):
            out[i] = (ids, mask)
    eos = getattr(tokenizer, "eos_token_id", None)
    for lo in range(0, len(plain), CHUNK):
        part = plain[lo: lo + CHUNK]
        enc = tokenizer([p[1] for p in part], add_special_tokens=True, verbose=False)["input_ids"]
        for (i, _), ids in zip(part, enc):
            if eos is not None and (not ids or ids[-1] != eos):
                ids = list(ids) + [eos]
            out[i] = (np.asarray(ids, dtype=np.int32), np.ones(len(ids), dtype=np.int8))
    for ids, mask in out:
        if len(mask):
            mask[0] = 0
    return out


def _tokenize_with_masks(tokenizer: Any, texts: list[str],
                         spans: list[list[tuple[int, int]]]) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        # verbose=False: rows over the model's max length are our business (max_seq_len), not a log warning
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = enc["offset_mapping"]
    except (NotImplementedError, KeyError, TypeError, ValueError):
        # A slow (pure-Python) tokenizer has no offsets: tokenize the supervised and other pieces separately.
        return [_tokenize_pieces(tokenizer, t, s) for t, s in zip(texts, spans)]
    return [(np.asarray(ids, dtype=np.int32), spans_to_mask(np.asarray(offs).reshape(-1, 2), s))
            for ids, offs, s in zip(enc["input_ids"], offsets, spans)]


def _tokenize_pieces(tokenizer: Any, text: str, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    ids: list[int] = []
    mask: list[int] = []
    cuts = sorted({0, len(text), *(p for s in spans for p in s)})
    for a, b in zip(cuts, cuts[1:]):
        piece = tokenizer(text[a:b], add_special_tokens=False)["input_ids"]
        inside = any(s <= a and b <= e for s, e in spans)
        ids += piece
        mask += [int(inside)] * len(piece)
    return np.asarray(ids, dtype=np.int32), np.asarray(mask, dtype=np.int8)


def located(source: str, field: str, message: str, hint: str | None = None) -> DataError:
    """A DataError at a row's ``file:line`` source."""
    file, _, line = source.rpartition(":")
    if file and line.isdigit():
        return DataError(message, file=file, line=int(line), field=field, hint=hint)
    return DataError(message, file=source or None, field=field, hint=hint)
