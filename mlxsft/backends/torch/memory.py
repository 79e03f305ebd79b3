"""Peak-memory estimate for a torch training run (printed before training; ``--plan`` prints and exits).

The same model of memory as ``mlxsft/backends/mlx/memory.py`` (and the same ``MemoryPlan`` fields the
progress view prints, ``mlxsft.backends.base.MemoryPlan``): weights as loaded; trainable parameters x (weight + gradient + optimizer moments);
per token and per trained layer ``ACT_HIDDEN x hidden + ACT_INTER x intermediate`` values kept for the
backward pass (SDPA keeps no attention scores; the eager attention adds ``heads x row length``); the logits
of the supervised positions only (``loss.token_nll`` computes no others), one head chunk of them at a time
(``mlxsft.backends.base.head_chunk_rows``), and their gradient in fp32; and on
a CPU, where the peak is the process's resident memory, the Python/torch runtime (``RUNTIME_GB``).

Checked on SmolLM2-135M, CPU, peak RSS, the bench job (``bench/bench_sft.py``): LoRA on all 30 layers with
micro-batches of 512 / 1024 / 2048 tokens planned at 1.12 / 0.83 / 1.17x the measured peak, on the last 8
layers 0.93x, full fine-tuning 1.10x; whole batches (8 x 672 tokens) 14.4 GB planned against 9.7 and 13.2 GB
measured in two identical runs (the CPU allocator's resident memory varies that much). Gradient checkpointing
is not modelled well on short rows: torch on a CPU peaked at 7.2 GB on whole batches of SmolLM2 where 2.6 GB
is planned; on a CPU, smaller micro-batches save more memory, and time, than checkpointing.

At long rows one layer's attention work at a time (``ATTN_WORK`` fp32 copies of its ``heads x row x row``
scores: the backward of CPU attention, and the masks) comes on top, with or without checkpointing: fitted on
Gemma-3-270M at one 8192-token row on a CPU (``bench/results/head-8192-torch-zen4.json`` and
``head-8192-torch-gc-zen4.json``: 18.19 GB and 6.23 GB measured, 14.39 and 3.02 GB planned without it, 17.61
and 6.24 GB with it); at 2048-token rows (not fitted) it moves the plan from +9% / -5% to +13% / -3% of the
peak (chunked / whole head, ``head-2048-zen4.json``).
"""

from __future__ import annotations

from typing import Any

from mlxsft.backends.base import OPT_SLOTS, MemoryPlan, head_chunk_rows
from mlxsft.config import Config

ACT_HIDDEN, ACT_INTER = 18.0, 6.0  # values per token per layer (fp32 on a CPU)
LOGIT_COPIES = 3  # logits, their softmax and its gradient
ATTN_WORK = 3.0  # fp32 copies of one layer's attention scores alive at the peak (docstring)
RUNTIME_GB = 0.6  # Python + torch + transformers resident after import (CPU peaks are RSS)


def estimate(model: Any, cfg: Config, rows: int, length: int, vocab_size: int, supervised_fraction: float = 1.0,
             *, on_cpu: bool = True, selective_logits: bool = True) -> MemoryPlan:
    """The plan for micro-batches of ``rows`` rows of ``length`` tokens."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    slots = 2 + OPT_SLOTS.get(cfg.optim.optimizer, 2)  # weight, grad (accumulated in place), moments
    mc = model.config
    hidden = getattr(mc, "hidden_size", 512)
    inter = getattr(mc, "intermediate_size", 4 * hidden)
    heads = getattr(mc, "num_attention_heads", 8)
    n_layers = getattr(mc, "num_hidden_layers", 1)
    if cfg.lora.method != "full" and cfg.lora.num_layers >= 0:  # no backward below the lowest adapted layer
        n_layers = min(n_layers, cfg.lora.num_layers)
    act_bytes = 2 if cfg.model.dtype != "float32" else 4
    tokens = rows * length
    scores = heads * length if getattr(mc, "_attn_implementation", "sdpa") == "eager" else 0
    per_layer = tokens * (ACT_HIDDEN * hidden + ACT_INTER * inter + scores) * act_bytes
    if cfg.train.grad_checkpoint:
        activations = tokens * hidden * act_bytes * n_layers + per_layer
    else:
        activations = per_layer * n_layers
    activations += ATTN_WORK * rows * heads * length * length * 4  # one layer's attention work (docstring)
    fraction = min(max(supervised_fraction, 0.05), 1.0) if selective_logits else 1.0
    positions = tokens * fraction
    if selective_logits:  # the head runs one chunk of head_chunk_rows positions at a time (torch/loss.py)
        positions = min(positions, head_chunk_rows(vocab_size))
    logits = positions * vocab_size * 4 * LOGIT_COPIES
    gb = 1e9
    return MemoryPlan(weights / gb, trainable * 4 * slots / gb, activations / gb, logits / gb,
                      RUNTIME_GB if on_cpu else 0.0)
