"""Masked next-token loss for transformers models, with contamination-free packing.

``token_nll(model, ids, mask, segments)`` returns the summed negative log-likelihood over supervised
target tokens and their count, like ``mlxsft/backends/mlx/loss.py``.

Packing: rows packed into one sequence must not attend to each other. transformers 5 passes a 4D mask
through untouched (``masking_utils._preprocess_mask_arguments``: "already prepared 4D mask ... returned
as-is") and SDPA takes a boolean mask (True = attend), so each packed batch gets a block-diagonal
causal mask ``[B, 1, L, L]``; models with sliding-window layers (Qwen2, Gemma 3) get a dict keyed by layer
type, which their forward accepts, with the window applied on top. Positions restart at 0 in each row,
so a packed row sees exactly what it would see alone (RoPE would not mind; absolute positions would).
Padding (segment 0) attends only to itself, so no softmax row is empty. Unpacked batches pass no mask:
padding sits at the end and the causal mask already keeps it out of every real token's view.
"""

from __future__ import annotations

from typing import Any, Optional


def packed_positions(segments: Any) -> Any:
    """Position of each token inside its own segment: 0, 1, 2, ... restarting at every row boundary."""
    import torch

    b, n = segments.shape
    idx = torch.arange(n, device=segments.device).expand(b, n)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    first = torch.where(starts, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - first


def block_causal_mask(segments: Any, window: Optional[int] = None) -> Any:
    """``[B, 1, L, L]`` boolean: query q may attend key k (same segment, k <= q, not padding)."""
    import torch

    n = segments.shape[1]
    pos = torch.arange(n, device=segments.device)
    causal = pos[:, None] >= pos[None, :]
    if window is not None:
        causal = causal & ((pos[:, None] - pos[None, :]) < window)
    same = (segments[:, :, None] == segments[:, None, :]) & (segments[:, None, :] > 0)
    mask = (same & causal) | torch.eye(n, dtype=torch.bool, device=segments.device)
    return mask[:, None, :, :]


def packed_attention(config: Any, segments: Any, dtype: Any) -> Any:
    """The ``attention_mask`` argument for a packed batch: a 4D mask, or a dict per layer type."""
    mask = block_causal_mask(segments)
    if getattr(config, "_attn_implementation", "sdpa") == "eager":  # eager adds the mask to the scores
        mask = _additive(mask, dtype)
    layer_types = set(getattr(config, "layer_types", None) or ())
    if "sliding_attention" not in layer_types:
        return mask
    sliding = block_causal_mask(segments, window=config.sliding_window)
    if getattr(config, "_attn_implementation", "sdpa") == "eager":
        sliding = _additive(sliding, dtype)
    return {"full_attention": mask, "sliding_attention": sliding}


def _additive(mask: Any, dtype: Any) -> Any:
    import torch

    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def forward_logits(model: Any, inputs: Any, segments: Optional[Any] = None) -> Any:
    if segments is None:
        return model(input_ids=inputs, use_cache=False).logits
    config = model.config
    dtype = next(model.parameters()).dtype
    return model(input_ids=inputs, attention_mask=packed_attention(config, segments, dtype),
                 position_ids=packed_positions(segments), use_cache=False).logits


def token_nll(model: Any, ids: Any, mask: Any, segments: Optional[Any] = None) -> tuple[Any, Any]:
    """(sum of NLL over supervised targets, number of supervised targets), as 0-d tensors."""
    import torch.nn.functional as F

    inputs, targets = ids[:, :-1], ids[:, 1:]
    tmask = mask[:, 1:].float()
    seg_in = segments[:, :-1] if segments is not None else None
    logits = forward_logits(model, inputs, seg_in).float()
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long(), reduction="none")
    return (nll * tmask.reshape(-1)).sum(), tmask.sum()
