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

import functools
from typing import Any, Callable, Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from mlxsft.backends.base import head_chunk_rows, whole_head


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
        head = inner.embed_tokens.as_linear if _tied(model) else model.lm_head
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
              select: Optional[tuple[mx.array, mx.array]] = None, *,
              head_grad: Optional[str] = None, head_chunk: Optional[int] = None) -> tuple[mx.array, mx.array]:
    """(sum of NLL over supervised targets, number of supervised targets).

    ``head_grad`` (with ``select``): the gradients the caller will take through the head, "hidden" (LoRA: the
    head is frozen) or "hidden+weight" (the head trains); None when no gradient is taken (validation, scoring).
    """
    if select is not None and (parts := split_head(model)) is not None:
        return _selected_nll(model, parts, ids, segments, *select, head_grad=head_grad, chunk=head_chunk)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    tmask = mask[:, 1:].astype(mx.float32)
    seg_in = segments[:, :-1] if segments is not None else None
    logits = forward_logits(model, inputs, seg_in).astype(mx.float32)
    nll = nn.losses.cross_entropy(logits, targets, reduction="none")
    return (nll * tmask).sum(), tmask.sum()


def _selected_nll(model: nn.Module, parts: tuple[Callable, Callable], ids: mx.array, segments: Optional[mx.array],
                  idx: mx.array, weight: mx.array, *, head_grad: Optional[str],
                  chunk: Optional[int]) -> tuple[mx.array, mx.array]:
    body, head = parts
    inputs, targets = ids[:, :-1], ids[:, 1:]
    cache = [SegmentMask(segments[:, :-1])] * len(model.layers) if segments is not None else None
    hidden = body(inputs, cache)
    picked = hidden.reshape(-1, hidden.shape[-1])[idx]
    picked_targets = targets.reshape(-1)[idx]
    matrix = head_matrix(model)
    chunk = chunk or head_chunk_rows(matrix.shape[0] if matrix is not None else 1)
    if matrix is not None and head_grad is not None and not whole_head():
        nll = _fused_head_nll(chunk, head_grad == "hidden+weight")(picked, matrix, picked_targets, weight)[0]
    else:  # no gradient, or a head that is not one plain matrix (quantized): chunked, each chunk after the last
        nll, done = mx.zeros((), mx.float32), None
        for start in range(0, picked.shape[0], chunk):
            h = picked[start:start + chunk]
            if done is not None:
                h = mx.depends(h, done)
            logits = head(h).astype(mx.float32)
            done = (nn.losses.cross_entropy(logits, picked_targets[start:start + chunk], reduction="none")
                    * weight[start:start + chunk]).sum()
            nll = nll + done
    return nll, weight.sum()


def head_matrix(model: nn.Module) -> Optional[mx.array]:
    """The head as one float (vocab, hidden) matrix: the tied embedding or a bias-free ``nn.Linear``; None for
    anything else (a quantized or adapted head), which the loss then runs through the head module itself."""
    key = _head_key(model)
    if key == "lm_head.weight":
        layer = model.lm_head
        return layer.weight if type(layer) is nn.Linear and "bias" not in layer else None
    embed = model.model.embed_tokens
    return embed.weight if type(embed) is nn.Embedding else None


def head_grad_of(model: nn.Module) -> str:
    """What a training step differentiates through the head: "hidden+weight" when the head's matrix trains (full
    fine-tuning, or a tied embedding that trains), else "hidden". Called once, outside any trace."""
    trainable = {k for k, _ in tree_flatten(model.trainable_parameters())}
    return "hidden+weight" if _head_key(model) in trainable else "hidden"


def _head_key(model: nn.Module) -> str:
    return "model.embed_tokens.weight" if _tied(model) else "lm_head.weight"


def _tied(model: nn.Module) -> bool:
    tied = getattr(model, "tie_word_embeddings", None)
    if tied is None:
        tied = getattr(getattr(model, "args", None), "tie_word_embeddings", "lm_head" not in model)
    return bool(tied or "lm_head" not in model)


@functools.cache
def _fused_head_nll(chunk: int, with_weight: bool) -> Callable:
    """``sum(weight * cross_entropy(hidden @ W^T, targets))`` whose gradients are computed in the forward, chunk by
    chunk, while each chunk's logits exist: a chunk's softmax minus the one-hot target *is* the gradient of its
    logits, so it becomes the gradient of ``hidden`` (and of ``W`` when the head trains) at once and the logits
    are freed. The same three matmuls as MLX's own forward + backward; the custom vjp only scales the stored
    gradients. ``mx.depends`` orders the chunks, so MLX's scheduler holds a few chunk-sized buffers at a time
    (about 7 measured), never the whole logits.
    Returns (loss, d loss / d hidden, d loss / d W)."""

    @mx.custom_function
    def fused(hidden: mx.array, matrix: mx.array, targets: mx.array, weight: mx.array):
        loss = mx.zeros((), mx.float32)
        grad_w = mx.zeros(matrix.shape, mx.float32) if with_weight else mx.zeros((), mx.float32)
        grads, done = [], None
        for start in range(0, hidden.shape[0], chunk):
            h, t, w = (a[start:start + chunk] for a in (hidden, targets, weight))
            if done is not None:
                h = mx.depends(h, done)
            logits = (h @ matrix.T).astype(mx.float32)
            lse = mx.logsumexp(logits, axis=-1, keepdims=True)
            picked = mx.take_along_axis(logits, t[:, None], axis=-1)
            part = ((lse - picked)[:, 0] * w).sum()
            logits = mx.depends(logits, part)  # the loss first, so the softmax may take the logits' buffer
            g = mx.exp(logits - lse) * w[:, None]
            g = g.at[mx.arange(g.shape[0]), t].add(-w).astype(matrix.dtype)  # softmax - one-hot, weighted
            grads.append((g @ matrix).astype(hidden.dtype))
            if with_weight:
                grad_w = grad_w + (g.T @ h).astype(mx.float32)
            loss = loss + part
            done = [part, grads[-1]] + ([grad_w] if with_weight else [])
        return loss, mx.concatenate(grads, axis=0), grad_w

    @fused.vjp
    def fused_vjp(primals, cotangents, outputs):
        hidden, matrix, targets, weight = primals
        scale = cotangents[0]
        grad_w = (outputs[2] * scale).astype(matrix.dtype) if with_weight else mx.zeros_like(matrix)
        return (outputs[1] * scale.astype(hidden.dtype), grad_w, mx.zeros_like(targets), mx.zeros_like(weight))

    return fused


def mean_logprob(model: nn.Module, ids: np.ndarray, mask: np.ndarray) -> float:
    """Mean log-probability of the targets ``mask`` marks in one row of ``ids`` (numpy in, a float out: the
    curation scorers call this without touching MLX arrays)."""
    idx, weight = supervised_selection(mask)
    nll, n = token_nll(model, mx.array(ids), mx.array(mask), select=(mx.array(idx), mx.array(weight)))
    mx.eval(nll, n)
    return -float(nll) / float(n)
