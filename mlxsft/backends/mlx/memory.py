"""Peak-memory estimate for an MLX training run (printed before training; ``--plan`` prints and exits).

Counts, in bytes: the weights as stored; each trainable parameter ``TRAINABLE_COPIES`` more times (its
gradient, the accumulated gradient, the optimizer's moments, less what MLX frees between them); per token
and per transformer layer the activations kept for the backward pass, ``ACT_HIDDEN x hidden + ACT_INTER x
intermediate + ACT_SCORES x heads x row length`` fp32 values; and at the supervised positions only (the
loss computes logits nowhere else) ``LOGIT_COPIES`` fp32 copies of the vocabulary-wide logits, of at most two
head chunks (``mlxsft.backends.base.head_chunk_rows``: the head runs chunk by chunk). The biggest
micro-batch is ``rows`` rows of ``length`` tokens (``mlxsft.data.batching.micro_batch_shape``: the whole batch
padded to the longest row, or as many longest rows as ``micro_batch_tokens`` holds).

The constants are least-squares fits of ``mx.get_peak_memory()`` after two training steps (LoRA and full
fine-tuning, rows of 128 and 512 tokens, 10% and 60% supervised, two llama shapes with hidden 256/384),
with the attention-score term lowered from the fitted 2.19 to 1.0 so that SmolLM2-135M (LoRA on all 30
layers, 8 rows of 672 tokens: 12.5 GB measured) is planned within 25% too (``tests/backends/test_mlx_memory.py``
holds the estimate to +-25% of the measured peak). Only the trained layers keep activations: MLX runs no
backward pass below the lowest one. Grad checkpointing keeps one hidden state per layer and one layer's
activations, that layer's attention scores ``RECOMPUTE_SCORES`` times: recomputed in the backward pass, its
scores, probabilities and their gradients are alive at once. That constant is fitted to the peaks of
``--grad-checkpoint`` runs: the llama shape of the tests at rows of 384-2048 tokens (1.2-3.2 score copies past
the rest of the plan) and Gemma-3-270M at one 8192-token row (4.4: 7.25 GB measured, 3.55 GB planned with one
copy; ``bench/results/head-8192-mlx-gc.json``); 3.5 puts all of them within 25%.
"""

from __future__ import annotations

import mlx.nn as nn
from mlx.utils import tree_flatten

from mlxsft.backends.base import OPT_SLOTS, MemoryPlan, head_chunk_rows
from mlxsft.config import Config

# fitted on MLX 0.32 (CPU); see the module docstring
ACT_HIDDEN, ACT_INTER, ACT_SCORES = 8.0, 5.83, 1.0
LOGIT_COPIES = 3.57
RECOMPUTE_SCORES = 3.5  # --grad-checkpoint: copies of the recomputed layer's attention scores (docstring)
TRAINABLE_COPIES = 3.8  # with AdamW's two moments; other optimizers keep fewer (OPT_SLOTS)


def estimate(model: nn.Module, cfg: Config, rows: int, length: int, vocab_size: int,
             supervised_fraction: float = 1.0) -> MemoryPlan:
    """The plan for micro-batches of ``rows`` rows of ``length`` tokens."""
    weights = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    copies = TRAINABLE_COPIES - 2 + OPT_SLOTS.get(cfg.optim.optimizer, 2)
    args = getattr(model, "args", None)
    hidden = getattr(args, "hidden_size", 512)
    inter = getattr(args, "intermediate_size", 4 * hidden)
    heads = getattr(args, "num_attention_heads", 8)
    n_layers = len(model.layers)
    if cfg.lora.num_layers >= 0:  # MLX keeps no activations below the lowest trained layer (no backward there)
        n_layers = min(n_layers, cfg.lora.num_layers)
    tokens, row = rows * length, length
    scores = tokens * heads * row * 4  # one fp32 copy of one layer's attention scores
    per_layer = tokens * (ACT_HIDDEN * hidden + ACT_INTER * inter) * 4
    if cfg.train.grad_checkpoint:
        activations = tokens * hidden * 4 * n_layers + per_layer + RECOMPUTE_SCORES * scores
    else:
        activations = (per_layer + ACT_SCORES * scores) * n_layers
    # the head runs in chunks of head_chunk_rows positions, two of them in flight at most (mlx/loss.py)
    positions = min(tokens * min(max(supervised_fraction, 0.05), 1.0), 2 * head_chunk_rows(vocab_size))
    logits = positions * vocab_size * 4 * LOGIT_COPIES
    gb = 1e9
    return MemoryPlan(weights / gb, trainable * 4 * copies / gb, activations / gb, logits / gb)
