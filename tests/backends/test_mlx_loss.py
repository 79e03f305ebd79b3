"""Masked loss and contamination-free packing on a tiny random llama (MLX)."""

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm import load

from mlxsft.backends.mlx.loss import token_nll


@pytest.fixture(scope="module")
def tiny_mlx(tiny_llama_dir):
    model, tok = load(str(tiny_llama_dir))
    return model


def _rows(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for n in (7, 12, 5):
        ids = rng.integers(10, 1000, size=n).astype(np.int32)
        mask = np.zeros(n, np.int8)
        mask[n // 2:] = 1
        rows.append((ids, mask))
    return rows


def test_masked_loss_counts_only_supervised_targets(tiny_mlx):
    ids, mask = _rows()[0]
    s, n = token_nll(tiny_mlx, mx.array(ids[None]), mx.array(mask[None]))
    assert int(n) == int(mask[1:].sum())
    # all-zero mask -> zero loss and zero count
    s0, n0 = token_nll(tiny_mlx, mx.array(ids[None]), mx.array(np.zeros_like(mask)[None]))
    assert float(s0) == 0.0 and int(n0) == 0


def test_packed_rows_have_the_same_loss_as_alone(tiny_mlx):
    rows = _rows()
    alone = []
    for ids, mask in rows:
        s, n = token_nll(tiny_mlx, mx.array(ids[None]), mx.array(mask[None]))
        alone.append(float(s))
    ids = np.concatenate([r[0] for r in rows] + [np.zeros(4, np.int32)])
    # the first token of each packed row is not a target of the previous row: mask it
    masks, segs = [], []
    for i, (r_ids, r_mask) in enumerate(rows, 1):
        m = r_mask.copy()
        m[0] = 0
        masks.append(m)
        segs.append(np.full(len(r_ids), i, np.int32))
    mask = np.concatenate(masks + [np.zeros(4, np.int8)])
    seg = np.concatenate(segs + [np.zeros(4, np.int32)])
    total, _ = token_nll(tiny_mlx, mx.array(ids[None]), mx.array(mask[None]), mx.array(seg[None]))
    assert float(total) == pytest.approx(sum(alone), rel=1e-5, abs=1e-4)
    # without the segment mask the rows would see each other: the loss differs
    leaky, _ = token_nll(tiny_mlx, mx.array(ids[None]), mx.array(mask[None]))
    assert abs(float(leaky) - sum(alone)) > 1e-3


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_logits_only_at_supervised_positions_give_the_same_loss(tmp_path, smol_tokenizer_dir, arch):
    from mlxsft.backends.mlx.loss import split_head, supervised_selection
    from tests.tiny import tiny_hf_model

    from mlxsft.models import load_mlx

    model, _, _ = load_mlx(str(tiny_hf_model(tmp_path / arch, arch, smol_tokenizer_dir)))
    assert split_head(model) is not None
    rows = _rows(1)
    ids = np.stack([np.pad(r[0], (0, 12 - len(r[0]))) for r in rows])
    mask = np.stack([np.pad(r[1], (0, 12 - len(r[1]))) for r in rows])
    full_s, full_n = token_nll(model, mx.array(ids), mx.array(mask))
    select = tuple(mx.array(a) for a in supervised_selection(mask))
    sel_s, sel_n = token_nll(model, mx.array(ids), mx.array(mask), None, select)
    assert int(sel_n) == int(full_n) == int(mask[:, 1:].sum())
    assert float(sel_s) == pytest.approx(float(full_s), rel=1e-5)
