"""Masked next-token loss for mlx-lm models, with contamination-free packing.

``token_nll(model, ids, mask, segments)`` returns the summed negative log-likelihood over supervised
target tokens and their count. Packed rows share a sequence but never attend to each other: each
attention layer gets a block-diagonal causal mask through a pass-through "cache" object (mlx-lm
models build their mask from ``cache.make_mask``), so no model code is patched. RoPE is relative, so
positions need no reset: a row's scores depend only on distances inside the row.
"""

from __future__ import annotations

from typing import Any, Optional

import mlx.core as mx
import mlx.nn as nn


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


def token_nll(model: nn.Module, ids: mx.array, mask: mx.array,
              segments: Optional[mx.array] = None) -> tuple[mx.array, mx.array]:
    """(sum of NLL over supervised targets, number of supervised targets)."""
    inputs, targets = ids[:, :-1], ids[:, 1:]
    tmask = mask[:, 1:].astype(mx.float32)
    seg_in = segments[:, :-1] if segments is not None else None
    logits = forward_logits(model, inputs, seg_in).astype(mx.float32)
    nll = nn.losses.cross_entropy(logits, targets, reduction="none")
    return (nll * tmask).sum(), tmask.sum()
