"""Masked next-token loss for mlx-lm models, with contamination-free packing.

``token_nll(model, ids, mask, segments, select)`` returns the summed negative log-likelihood over
supervised target tokens and their count.

Logits only where they are needed: SFT supervises a fraction of the tokens (often 10-30%), and on a CPU the
vocabulary projection plus its log-softmax dominates a small model's step (measured: ``logsumexp`` over
384 x 49152 logits takes 0.43 s on the 2-core build machine, the whole transformer body 9 ms). With
``select`` (flat indices of supervised targets, padded to a multiple of 32 with weight 0) the body runs on
every position but the head and the cross-entropy only on the selected ones. Packed rows share a sequence but never attend to each other: each
attention layer gets a block-diagonal causal mask through a pass-through "cache" object (mlx-lm
models build their mask from ``cache.make_mask``), so no model code is patched. RoPE is relative, so
positions need no reset: a row's scores depend only on distances inside the row.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np


class SegmentMask:
    """Stands in for a KV cache during a training forward pass: no caching, a custom mask."""

    offset = 0

    def __init__(self, segments: mx.array):
        # attend[b, q, k] = same segment, k <= q, not padding
        seg = segments
        same = (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] > 0)
        n = seg.shape[1]
        pos = mx.arange(n)
        self._causal = pos[:, None] >= pos[None, :]
        self._same = same
        self._pos = pos

    def make_mask(self, n: int, return_array: bool = False, window_size: Optional[int] = None) -> mx.array:
        mask = self._same & self._causal
        if window_size is not None:
            mask = mask & ((self._pos[:, None] - self._pos[None, :]) < window_size)
        # pad rows (segment 0) attend to themselves only, so softmax never sees an empty row
        mask = mask | mx.eye(n, dtype=mx.bool_)
        return mask[:, None, :, :]

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        return keys, values

    @property
    def state(self) -> Any:  # never saved; present for API completeness
        return ()


def forward_logits(model: nn.Module, inputs: mx.array, segments: Optional[mx.array] = None) -> mx.array:
    if segments is None:
        return model(inputs)
    masker = SegmentMask(segments)
    return model(inputs, cache=[masker] * len(model.layers))


def split_head(model: nn.Module) -> Optional[tuple[Callable, Callable]]:
    """(body, head) such that ``head(body(x, cache)) == model(x, cache)``, or None if unknown.

    mlx-lm's causal LMs are ``self.model`` (the transformer) followed by ``lm_head`` or the tied embedding;
    the split is checked numerically once per model, so an architecture that does more falls back safely.
    """
    cached = getattr(model, "_mlxsft_split", None)
    if cached is not None:
        return cached or None
    inner = model.get("model") if isinstance(model, dict) else None
    result: Any = False
    if isinstance(inner, nn.Module) and "embed_tokens" in inner:
        tied = getattr(model, "tie_word_embeddings", None)
        if tied is None:
            tied = getattr(getattr(model, "args", None), "tie_word_embeddings", "lm_head" not in model)
        head = inner.embed_tokens.as_linear if tied or "lm_head" not in model else model.lm_head
        body = lambda x, cache=None: inner(x, cache)  # noqa: E731
        probe = mx.array([[1, 2, 3, 4]])
        try:
            ok = mx.allclose(head(body(probe)), model(probe), atol=1e-4, rtol=1e-4).item()
        except Exception:
            ok = False
        result = (body, head) if ok else False
    object.__setattr__(model, "_mlxsft_split", result)
    return result or None


def supervised_selection(loss_mask: np.ndarray, multiple: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of supervised targets (mask[:, 1:]) padded to a multiple, and their 0/1 weights."""
    flat = np.asarray(loss_mask)[:, 1:].reshape(-1)
    idx = np.flatnonzero(flat).astype(np.int32)
    k = max(multiple, -(-len(idx) // multiple) * multiple)
    out_idx = np.zeros(k, np.int32)
    out_w = np.zeros(k, np.float32)
    out_idx[: len(idx)] = idx
    out_w[: len(idx)] = 1.0
    return out_idx, out_w


def token_nll(model: nn.Module, ids: mx.array, mask: Optional[mx.array],
              segments: Optional[mx.array] = None,
              select: Optional[tuple[mx.array, mx.array]] = None) -> tuple[mx.array, mx.array]:
    """(sum of NLL over supervised targets, number of supervised targets)."""
    if select is not None and (parts := split_head(model)) is not None:
        return _selected_nll(model, parts, ids, segments, *select)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    tmask = mask[:, 1:].astype(mx.float32)
    seg_in = segments[:, :-1] if segments is not None else None
    logits = forward_logits(model, inputs, seg_in).astype(mx.float32)
    nll = nn.losses.cross_entropy(logits, targets, reduction="none")
    return (nll * tmask).sum(), tmask.sum()


def _selected_nll(model: nn.Module, parts: tuple[Callable, Callable], ids: mx.array, segments: Optional[mx.array],
                  idx: mx.array, weight: mx.array) -> tuple[mx.array, mx.array]:
    body, head = parts
    inputs, targets = ids[:, :-1], ids[:, 1:]
    cache = [SegmentMask(segments[:, :-1])] * len(model.layers) if segments is not None else None
    hidden = body(inputs, cache)
    picked = hidden.reshape(-1, hidden.shape[-1])[idx]
    logits = head(picked).astype(mx.float32)
    nll = nn.losses.cross_entropy(logits, targets.reshape(-1)[idx], reduction="none")
    return (nll * weight).sum(), weight.sum()


def mean_logprob(model: nn.Module, ids: np.ndarray, mask: np.ndarray) -> float:
    """Mean log-probability of the targets ``mask`` marks in one row of ``ids`` (numpy in, a float out: the
    curation scorers call this without touching MLX arrays)."""
    idx, weight = supervised_selection(mask)
    nll, n = token_nll(model, mx.array(ids), mx.array(mask), select=(mx.array(idx), mx.array(weight)))
    mx.eval(nll, n)
    return -float(nll) / float(n)
