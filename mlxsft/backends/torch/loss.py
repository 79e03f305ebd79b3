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

Logits only where they are needed: SFT supervises a fraction of the tokens, and the vocabulary head and
its cross-entropy are a large part of a small model's step. When the model splits into a body (the
transformer) and a head (``get_output_embeddings``) whose composition reproduces its logits (checked
numerically once per model, so a model that scales or caps its logits falls back), the head runs only on
the supervised positions. Measured on SmolLM2-135M LoRA, 2 CPU cores: see the README's Performance table.
Not used under torch.distributed (DDP/FSDP must see the whole forward).
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


def _forward_kwargs(model: Any, inputs: Any, segments: Optional[Any]) -> dict[str, Any]:
    if segments is None:
        return {"input_ids": inputs, "use_cache": False}
    dtype = next(model.parameters()).dtype
    return {"input_ids": inputs, "attention_mask": packed_attention(model.config, segments, dtype),
            "position_ids": packed_positions(segments), "use_cache": False}


def forward_logits(model: Any, inputs: Any, segments: Optional[Any] = None) -> Any:
    return model(**_forward_kwargs(model, inputs, segments)).logits


def split_head(model: Any) -> Optional[tuple[Any, Any]]:
    """(body, head) with ``head(body(**kw).last_hidden_state) == model(**kw).logits``, or None.

    Works through a peft wrapper (its LoRA layers live inside the body). Checked once per model on a probe.
    """
    cached = model.__dict__.get("_mlxsft_split")
    if cached is not None:
        return cached or None
    import torch

    result: Any = False
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = causal.get_output_embeddings() if hasattr(causal, "get_output_embeddings") else None
    body = getattr(causal, getattr(causal, "base_model_prefix", "model"), None)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed and head is not None and isinstance(body, torch.nn.Module) and body is not causal:
        device = next(model.parameters()).device
        probe = torch.tensor([[1, 2, 3, 4]], device=device)
        was_training = model.training
        model.eval()  # dropout off, so both sides compute the same thing
        try:
            with torch.no_grad():
                split = head(body(input_ids=probe, use_cache=False).last_hidden_state).float()
                whole = model(input_ids=probe, use_cache=False).logits.float()
            result = (body, head) if split.shape == whole.shape and torch.allclose(split, whole, 1e-4, 1e-4) else False
        except (TypeError, AttributeError, RuntimeError, ValueError):
            result = False
        finally:
            model.train(was_training)
    model.__dict__["_mlxsft_split"] = result
    return result or None


def token_nll(model: Any, ids: Any, mask: Any, segments: Optional[Any] = None) -> tuple[Any, Any]:
    """(sum of NLL over supervised targets, number of supervised targets), as 0-d tensors."""
    import torch.nn.functional as F

    inputs, targets = ids[:, :-1], ids[:, 1:]
    tmask = mask[:, 1:].float()
    seg_in = segments[:, :-1] if segments is not None else None
    parts = split_head(model)
    if parts is None:
        logits = forward_logits(model, inputs, seg_in).float()
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long(), reduction="none")
        return (nll * tmask.reshape(-1)).sum(), tmask.sum()
    body, head = parts
    hidden = body(**_forward_kwargs(model, inputs, seg_in)).last_hidden_state
    flat = tmask.reshape(-1).nonzero().squeeze(1)  # supervised positions (the mask is 0/1)
    logits = head(hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat)).float()
    nll = F.cross_entropy(logits, targets.reshape(-1).index_select(0, flat).long(), reduction="sum")
    return nll, tmask.sum()
