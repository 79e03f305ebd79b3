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

import functools
from typing import Any, Optional

from mlxsft.backends.base import head_chunk_rows, whole_head


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


def token_nll(model: Any, ids: Any, mask: Any, segments: Optional[Any] = None,
              head_chunk: Optional[int] = None) -> tuple[Any, Any]:
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
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat)
    return head_nll(head, picked, targets.reshape(-1).index_select(0, flat).long(), head_chunk), tmask.sum()


def head_nll(head: Any, hidden: Any, targets: Any, chunk: Optional[int] = None) -> Any:
    """Summed NLL of ``targets`` under ``head(hidden)``, the logits built ``chunk`` positions at a time.

    A plain ``nn.Linear`` head (the usual case, tied or not) goes through ``_fused_head_nll``: each chunk's
    gradient is taken while its logits exist, so the backward needs no second pass over them. Any other head
    (a LoRA-wrapped or quantized one) is chunked under activation checkpointing: bounded too, one more head
    forward in the backward.
    """
    import torch

    chunk = chunk or head_chunk_rows(head.weight.shape[0] if hasattr(head, "weight") else 1)
    if type(head) is torch.nn.Linear and not whole_head():
        grad = torch.is_grad_enabled()
        needs = tuple(grad and t is not None and t.requires_grad for t in (hidden, head.weight, head.bias))
        return _fused_head_nll().apply(hidden, head.weight, head.bias, targets, chunk, needs)
    from torch.utils.checkpoint import checkpoint

    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        piece = (hidden[start:start + chunk], targets[start:start + chunk])
        if torch.is_grad_enabled() and hidden.shape[0] > chunk:
            total = total + checkpoint(_chunk_nll, head, *piece, use_reentrant=False)
        else:
            total = total + _chunk_nll(head, *piece)
    return total


def _chunk_nll(head: Any, hidden: Any, targets: Any) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")


@functools.cache
def _fused_head_nll() -> Any:
    """The autograd function, built on first use so that importing this module does not import torch."""
    import torch
    import torch.nn.functional as F

    class FusedHeadNLL(torch.autograd.Function):
        """``cross_entropy(hidden @ W^T + b, targets, "sum")`` with the gradients computed chunk by chunk in the
        forward: a chunk's softmax minus the one-hot target *is* the gradient of its logits, so it is turned into
        the gradients of ``hidden`` (and of ``W``, ``b`` when they train) at once and the logits freed. The same
        three matmuls as autograd's forward + backward, with one chunk of logits alive instead of all of them."""

        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, bias: Any, targets: Any, chunk: int,
                    needs: tuple[bool, bool, bool]) -> Any:
            want_h, want_w, want_b = needs
            # sums over chunks: fp32 for half-precision weights (as autograd's one matmul would), else their dtype
            acc = torch.float32 if weight.dtype in (torch.float16, torch.bfloat16) else weight.dtype
            loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
            gh = torch.empty_like(hidden) if want_h else None
            gw = torch.zeros(weight.shape, dtype=acc, device=weight.device) if want_w else None
            gb = torch.zeros(bias.shape, dtype=acc, device=bias.device) if want_b else None
            for start in range(0, hidden.shape[0], chunk):
                h, t = hidden[start:start + chunk], targets[start:start + chunk]
                logits = F.linear(h, weight, bias).float()
                lse = torch.logsumexp(logits, dim=-1)
                loss += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
                if not (want_h or want_w or want_b):
                    continue
                grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
                grad[torch.arange(len(t), device=t.device), t] -= 1.0
                grad = grad.to(weight.dtype)
                if want_b:
                    gb += grad.sum(0).to(acc)
                if want_h:
                    gh[start:start + chunk] = (grad @ weight).to(hidden.dtype)
                if want_w:
                    gw.addmm_(grad.t().to(acc), h.to(acc))
            ctx.save_for_backward(*(g for g in (gh, gw, gb) if g is not None))
            ctx.needs = needs
            ctx.weight_dtype, ctx.bias_dtype = weight.dtype, bias.dtype if bias is not None else None
            return loss

        @staticmethod
        def backward(ctx: Any, grad_out: Any) -> Any:
            saved = iter(ctx.saved_tensors)
            gh, gw, gb = (next(saved) if need else None for need in ctx.needs)
            return (gh * grad_out.to(gh.dtype) if gh is not None else None,
                    (gw * grad_out).to(ctx.weight_dtype) if gw is not None else None,
                    (gb * grad_out).to(ctx.bias_dtype) if gb is not None else None,
                    None, None, None)

    return FusedHeadNLL
