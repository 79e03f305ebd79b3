"""Peak-memory estimate for a torch training run (printed before training; ``--plan`` prints and exits).

The same model of memory as ``mlxsft/backends/mlx/memory.py`` (and the same ``MemoryPlan`` fields the
progress view prints): weights as loaded; trainable parameters x (weight + gradient + optimizer
moments); activations kept for the backward pass per layer; the logits and their gradient in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlxsft.config import Config

OPT_SLOTS = {"adamw": 2, "adam": 2, "sgd": 1, "adafactor": 1, "muon": 1}


@dataclass
class MemoryPlan:
    weights_gb: float
    trainable_gb: float
    activations_gb: float
    logits_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.trainable_gb + self.activations_gb + self.logits_gb


def estimate(model: Any, cfg: Config, rows: int, length: int, vocab_size: int) -> MemoryPlan:
    """The plan for micro-batches of ``rows`` rows of ``length`` tokens."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    slots = 2 + OPT_SLOTS.get(cfg.optim.optimizer, 2)  # weight, grad (accumulated in place), moments
    mc = model.config
    hidden = getattr(mc, "hidden_size", 512)
    inter = getattr(mc, "intermediate_size", 4 * hidden)
    heads = getattr(mc, "num_attention_heads", 8)
    n_layers = getattr(mc, "num_hidden_layers", 1)
    act_bytes = 2 if cfg.model.dtype != "float32" else 4
    tokens = rows * length
    per_layer = tokens * (18 * hidden + 6 * inter + heads * length) * act_bytes
    if cfg.train.grad_checkpoint:
        activations = tokens * hidden * act_bytes * n_layers + per_layer
    else:
        activations = per_layer * n_layers
    logits = tokens * vocab_size * 4 * 3
    gb = 1e9
    return MemoryPlan(weights / gb, trainable * 4 * slots / gb, activations / gb, logits / gb)
