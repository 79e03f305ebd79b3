"""``mlxsft eval --data`` scores a split with the trainer's own validation plan, micro-batch cut included."""

from __future__ import annotations

import types

import numpy as np

from mlxsft.backends.loop import validation_plan
from mlxsft.config import load_config
from mlxsft.data.records import Example, PreparedSplit


def test_validation_loss_uses_the_trainers_plan_with_micro_batches(monkeypatch):
    from mlxsft.backends import registry
    from mlxsft.evaluate import validation_loss

    rows = [Example(np.arange(n, dtype=np.int32), np.ones(n, np.int8), i) for i, n in enumerate([60, 50, 40, 30])]
    cfg = load_config(None, {"batch_size": 4, "micro_batch_tokens": 128, "max_seq_len": 64})
    seen = {}

    def split_nll(model, examples, plan, *, pad_id, pack):
        seen["plan"] = plan
        return 10.0, 5

    monkeypatch.setattr(registry, "part", lambda name, module: types.SimpleNamespace(split_nll=split_nll))
    result = validation_loss(None, PreparedSplit(rows, {}, ""), cfg, pad_id=0)
    assert result.loss == 2.0 and result.tokens == 5
    assert seen["plan"] == validation_plan(rows, cfg)
    assert len(seen["plan"]) > 1  # the 4 rows were cut into micro-batches, as the trainer validates
