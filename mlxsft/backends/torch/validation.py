"""Masked NLL over a whole split on torch: the trainer's validation and ``mlxsft eval --data --backend torch``.

    total, count = split_nll(model, split.examples, plan_batches(...), pad_id=0, pack=False)
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Iterable, Optional

import numpy as np

from mlxsft.backends.torch.loss import token_nll
from mlxsft.data.batching import Batch, collate


def batch_tensors(batch: Batch, device: Any, pack: bool) -> tuple[Any, Any, Any]:
    """(ids, loss mask, segment ids or None) of a collated batch, on ``device``."""
    import torch

    ids = torch.from_numpy(np.asarray(batch.input_ids, dtype=np.int64)).to(device)
    mask = torch.from_numpy(np.asarray(batch.loss_mask, dtype=np.float32)).to(device)
    seg = torch.from_numpy(np.asarray(batch.segment_ids, dtype=np.int64)).to(device) if pack else None
    return ids, mask, seg


def split_nll(model: Any, examples: list, batches: Iterable, *, pad_id: int, pack: bool,
              autocast: Optional[Any] = None) -> tuple[float, int]:
    """(sum of NLL over supervised tokens, supervised tokens); the model is left in the mode it was in.

    ``autocast``: a zero-argument context factory (the trainer's mixed precision), else none.
    """
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    total, count = 0.0, 0
    model.eval()
    try:
        with torch.no_grad(), (autocast or nullcontext)():
            for b in batches:
                s, n = token_nll(model, *batch_tensors(collate(examples, b, pad_id), device, pack))
                total, count = total + float(s), count + int(n)
    finally:
        model.train(was_training)
    return total, count
