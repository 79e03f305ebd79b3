"""Batching and packing: deterministic plans, little padding, bins within max_seq_len, rows kept apart."""

from __future__ import annotations

import numpy as np
import pytest

from mlxsft.data import Example, collate, padding_fraction, plan_batches
from mlxsft.data.batching import micro_batch_shape, split_batch


def examples_of(lengths, seed=0) -> list[Example]:
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(lengths):
        mask = (rng.random(n) < 0.5).astype(np.int8)
        mask[0] = 0
        out.append(Example(rng.integers(3, 50, n).astype(np.int32), mask, i))
    return out


LENGTHS = np.random.default_rng(1).integers(16, 512, 2000).tolist()


def rows_of(plan):
    return sorted(r for batch in plan for seq in batch for r in seq)


@pytest.mark.parametrize("pack", [False, True])
def test_plans_are_deterministic_and_cover_every_row_once(pack):
    kw = dict(max_seq_len=512, pack=pack)
    a = plan_batches(LENGTHS, 8, seed=0, epoch=0, **kw)
    assert a == plan_batches(LENGTHS, 8, seed=0, epoch=0, **kw)
    assert a != plan_batches(LENGTHS, 8, seed=0, epoch=1, **kw)
    assert a != plan_batches(LENGTHS, 8, seed=1, epoch=0, **kw)
    assert rows_of(a) == list(range(len(LENGTHS)))
    assert all(1 <= len(batch) <= 8 for batch in a)


def test_length_grouping_keeps_padding_low():
    ex = examples_of(LENGTHS)
    grouped = plan_batches(LENGTHS, 8, max_seq_len=512, pack=False, seed=0, epoch=0)
    order = np.random.default_rng(0).permutation(len(LENGTHS))
    random = [[[int(r)] for r in order[i: i + 8]] for i in range(0, len(order), 8)]
    assert padding_fraction(ex, grouped) < 0.05 < 0.3 < padding_fraction(ex, random)
    evaluation = plan_batches(LENGTHS, 8, max_seq_len=512, pack=False, seed=0, epoch=0, shuffle=False)
    assert evaluation == plan_batches(LENGTHS, 8, max_seq_len=512, pack=False, seed=5, epoch=3, shuffle=False)
    assert padding_fraction(ex, evaluation) < 0.05


def test_packing_never_overfills_a_bin_and_wastes_little():
    plan = plan_batches(LENGTHS, 4, max_seq_len=512, pack=True, seed=0, epoch=0)
    bins = [seq for batch in plan for seq in batch]
    assert max(sum(LENGTHS[r] for r in seq) for seq in bins) <= 512
    assert len(bins) <= int(np.ceil(sum(LENGTHS) / 512) * 1.02) + 1  # best-fit decreasing is near the bound
    assert padding_fraction(examples_of(LENGTHS), plan) < 0.03
    with pytest.raises(ValueError, match="cannot be packed"):
        plan_batches([100, 600], 2, max_seq_len=512, pack=True, seed=0, epoch=0)


def test_collate_layout():
    ex = examples_of([5, 3, 9])
    batch = collate(ex, [[0, 1], [2]], pad_id=99)
    assert batch.input_ids.shape == (2, 16) and batch.n_rows == 3  # 9 tokens, padded to a multiple of 8
    assert batch.input_ids.dtype == np.int32 and batch.loss_mask.dtype == np.int8 and batch.segment_ids.dtype == np.int32
    assert batch.segment_ids[0].tolist() == [1] * 5 + [2] * 3 + [0] * 8
    assert batch.segment_ids[1].tolist() == [1] * 9 + [0] * 7
    assert batch.input_ids[0, :8].tolist() == ex[0].input_ids.tolist() + ex[1].input_ids.tolist()
    assert batch.loss_mask[0, :8].tolist() == ex[0].loss_mask.tolist() + ex[1].loss_mask.tolist()
    assert (batch.input_ids[batch.segment_ids == 0] == 99).all() and not batch.loss_mask[batch.segment_ids == 0].any()
    assert padding_fraction(ex, [[[0, 1], [2]]]) == pytest.approx(1 - 17 / 32)


# --------------------------------------------------------------------------------------------- packing equivalence
def block_causal(segments: np.ndarray) -> np.ndarray:
    """attend[b, q, k]: same row, not in the future, not padding: what a backend builds from segment_ids."""
    q = np.arange(segments.shape[1])
    same = segments[:, :, None] == segments[:, None, :]
    return same & (q[None, :, None] >= q[None, None, :]) & (segments[:, :, None] > 0)


def toy_token_losses(ids: np.ndarray, mask: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """A tiny attention 'model' in numpy with relative positions (as RoPE): per-target NLL, 0 where unsupervised.

    Uses the trainer's convention: inputs ids[:, :-1], targets ids[:, 1:], mask[:, 1:].
    """
    rng = np.random.default_rng(0)
    emb, out = rng.normal(size=(64, 16)), rng.normal(size=(16, 64))
    decay = 0.9 ** np.arange(ids.shape[1])  # weight by distance only: no absolute position anywhere
    inputs, targets, tmask = ids[:, :-1], ids[:, 1:], mask[:, 1:]
    attend = block_causal(segments[:, :-1])
    dist = np.abs(np.arange(inputs.shape[1])[:, None] - np.arange(inputs.shape[1])[None, :])
    weights = attend * decay[dist][None]
    hidden = np.einsum("bqk,bkd->bqd", weights, emb[inputs])
    logits = hidden @ out
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    return nll * tmask


def test_a_packed_batch_gives_each_row_the_loss_it_has_alone():
    lengths = [7, 12, 5, 9, 3, 11]
    ex = examples_of(lengths, seed=3)
    plan = plan_batches(lengths, 2, max_seq_len=24, pack=True, seed=0, epoch=0)
    assert any(len(seq) > 1 for batch in plan for seq in batch)  # something is actually packed
    for batch_plan in plan:
        batch = collate(ex, batch_plan, pad_id=0)
        losses = toy_token_losses(batch.input_ids, batch.loss_mask, batch.segment_ids)
        for b, seq in enumerate(batch_plan):
            for k, r in enumerate(seq, start=1):
                alone = collate(ex, [[r]], pad_id=0)
                expected = toy_token_losses(alone.input_ids, alone.loss_mask, alone.segment_ids).sum()
                # target t belongs to the row of token t: segment_ids[:, 1:]
                packed = losses[b][batch.segment_ids[b, 1:] == k].sum()
                assert packed == pytest.approx(expected, rel=1e-9, abs=1e-9)
                # the first token of a packed row is never a target predicted from the previous row
                first = np.argmax(batch.segment_ids[b] == k)
                assert batch.loss_mask[b, first] == 0


@pytest.mark.parametrize("pack", [False, True])
@pytest.mark.parametrize("budget", [1, 300, 1024, 4096])
def test_split_batch_keeps_every_sequence_once_within_the_token_budget(pack, budget):
    ex = examples_of(LENGTHS[:256])
    lengths = [len(e.input_ids) for e in ex]
    for batch in plan_batches(lengths, 8, max_seq_len=512, pack=pack, seed=0, epoch=0):
        parts = split_batch(ex, batch, budget)
        assert sorted(map(tuple, (s for p in parts for s in p))) == sorted(map(tuple, batch))
        for part in parts:
            cells = collate(ex, part, pad_id=0).input_ids.size
            # within budget, or one sequence alone that is longer than the budget by itself
            assert cells <= budget or len(part) == 1, (budget, cells, len(part))
        # greedy, longest first: a part could not have taken the next part's first (longest) sequence
        for a, b in zip(parts, parts[1:]):
            width = collate(ex, a, pad_id=0).input_ids.shape[1]
            assert (len(a) + 1) * width > budget


def test_split_batch_without_budget_or_with_room_keeps_the_batch_whole():
    ex = examples_of([100, 200, 300, 50])
    batch = [[0], [1], [2], [3]]
    assert split_batch(ex, batch, 0) == [batch]
    assert split_batch(ex, batch, 4 * 304) == [[[2], [1], [0], [3]]]  # longest first, one micro-batch
    assert split_batch(ex, batch, 304) == [[[2]], [[1]], [[0], [3]]]  # 2 x 200-wide = 400 > 304; 2 x 104 fits
    assert micro_batch_shape(300, 4, 0) == (4, 304)
    assert micro_batch_shape(300, 4, 1000) == (3, 304)
    assert micro_batch_shape(300, 4, 100) == (1, 304)  # a row longer than the budget still runs, alone
