"""Masked NLL over a whole split on MLX: the trainer's validation and ``mlxsft eval --data``, one code path.

    total, count = split_nll(model, split.examples, plan_batches(...), pad_id=0, pack=False)
    mean_loss = total / count
"""

from __future__ import annotations

from typing import Any, Iterable

import mlx.core as mx

from mlxsft.backends.mlx.loss import supervised_selection, token_nll
from mlxsft.data.batching import collate


def split_nll(model: Any, examples: list, batches: Iterable, *, pad_id: int, pack: bool) -> tuple[float, int]:
    """(sum of NLL over supervised tokens, supervised tokens) over ``batches`` of ``examples``."""
    total, count = 0.0, 0
    for b in batches:
        batch = collate(examples, b, pad_id)
        seg = mx.array(batch.segment_ids) if pack else None
        select = tuple(mx.array(a) for a in supervised_selection(batch.loss_mask))
        s, n = token_nll(model, mx.array(batch.input_ids), mx.array(batch.loss_mask), seg, select)
        mx.eval(s, n)
        total, count = total + float(s), count + int(n)
    return total, count
