"""Batches: which rows go together (length-grouped, or packed), and the padded numpy arrays for one batch.

    from mlxsft.data.batching import plan_batches, collate
    plan = plan_batches([len(e.input_ids) for e in split.examples], 8, max_seq_len=512, pack=False, seed=0, epoch=0)
    batch = collate(split.examples, plan[0], pad_id=tokenizer.pad_token_id)

A plan is ``batch -> sequences -> row indices`` and depends only on ``(lengths, seed, epoch)``, so a resumed run
sees the same order. Unpacked, every sequence is one row, and rows of similar length share a batch: the rows are
shuffled, cut into buckets of ``BUCKET_BATCHES`` batches, sorted by length inside a bucket, cut into batches, and
the batches shuffled. Packed, rows are placed best-fit-decreasing into bins of ``max_seq_len`` tokens and the bins
batched. ``segment_ids`` (1..k per packed row, 0 on padding) let the backend build a block-diagonal causal mask
so packed rows never attend to each other; positions need no reset because RoPE only sees relative distances.

A planned batch is the optimizer's unit; ``split_batch`` cuts it into micro-batches of at most ``max_tokens``
cells (sequences x padded length), longest sequences first, so a step over long rows never holds the
activations of ``batch_size`` of them at once. Each micro-batch is padded to its own longest sequence. The
trainers sum the micro-batches' gradients of ``sum_nll / N`` (N: the step's supervised tokens), so the update
is the one the whole batch would give. Why it pays on a CPU: the activations of 8 rows of 670 tokens in
SmolLM2-135M are ~12 GB, streamed through memory several times per step; in ~1-2k-token micro-batches they
stay small, and the same LoRA step ran ~2x faster at a quarter of the memory (README "Performance").
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mlxsft.data.records import Example

BUCKET_BATCHES = 32  # batches per length bucket: more = less padding, less = more randomness in batch makeup
# micro_batch_tokens when the config leaves it unset and training runs on a CPU. Measured on SmolLM2-135M LoRA,
# batch 8 of 37-670-token rows, 2 x86 cores (bench/bench_sft.py): 512 -> 49.9 s, 1024 -> 47.9 s, 2048 -> 57.3 s,
# whole batches -> 98.6 s on MLX (torch: 33.2 / 33.3 / 38.0 / 57.2 s). A GPU runs whole batches (0), as before:
# its throughput grows with matrix size, and no GPU was at hand to measure a budget for it.
CPU_MICRO_BATCH_TOKENS = 1024


@dataclass
class Batch:
    input_ids: np.ndarray  # int32 [B, L], padded with pad_id
    loss_mask: np.ndarray  # int8 [B, L], 1 = supervised target token; 0 on padding
    segment_ids: np.ndarray  # int32 [B, L]: 0 on padding, 1..k for the k rows in a sequence
    n_rows: int


def plan_batches(lengths: list[int], batch_size: int, *, max_seq_len: int, pack: bool, seed: int, epoch: int,
                 shuffle: bool = True) -> list[list[list[int]]]:
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    rng = np.random.default_rng([seed & 0xFFFFFFFF, epoch])
    lens = np.asarray(lengths, dtype=np.int64)
    if pack:
        sequences = _pack(lens, max_seq_len, rng if shuffle else None)
        if shuffle:
            sequences = [sequences[i] for i in rng.permutation(len(sequences))]
        return [sequences[i: i + batch_size] for i in range(0, len(sequences), batch_size)]
    if shuffle:
        order = rng.permutation(len(lens))
        bucket = batch_size * BUCKET_BATCHES
        batches = []
        for lo in range(0, len(order), bucket):
            chunk = order[lo: lo + bucket]
            chunk = chunk[np.argsort(lens[chunk], kind="stable")]
            batches += [chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size)]
        batches = [batches[i] for i in rng.permutation(len(batches))]
    else:  # evaluation: fixed order, still length-sorted so little is padding
        order = np.argsort(lens, kind="stable")
        batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    return [[[int(r)] for r in b] for b in batches]


def _pack(lens: np.ndarray, max_seq_len: int, rng: np.random.Generator | None) -> list[list[int]]:
    """Best-fit decreasing: each row, longest first, goes into the fullest bin it still fits in."""
    if len(lens) and int(lens.max()) > max_seq_len:
        raise ValueError(f"a row of {int(lens.max())} tokens cannot be packed into max_seq_len={max_seq_len}")
    base = rng.permutation(len(lens)) if rng is not None else np.arange(len(lens))  # random tie-breaks per epoch
    order = base[np.argsort(-lens[base], kind="stable")]
    bins: list[list[int]] = []
    space: list[tuple[int, int]] = []  # (free tokens, bin index), sorted, so bisect finds the best fit
    for r in order:
        n = int(lens[r])
        at = bisect.bisect_left(space, (n, -1))
        if at < len(space):
            free, b = space.pop(at)
        else:
            free, b = max_seq_len, len(bins)
            bins.append([])
        bins[b].append(int(r))
        bisect.insort(space, (free - n, b))
    return bins


def split_batch(examples: list[Example], batch_plan: list[list[int]], max_tokens: Optional[int],
                pad_to_multiple: int = 8) -> list[list[list[int]]]:
    """One planned batch as micro-batches of at most ``max_tokens`` cells (sequences x padded length).

    Sequences are taken longest first and a micro-batch grows while its cells stay within the budget; a
    sequence longer than the budget on its own is a micro-batch by itself. ``max_tokens`` 0 or None: no split.
    Every sequence lands in exactly one micro-batch.
    """
    if not max_tokens or len(batch_plan) <= 1:
        return [batch_plan]
    lengths = [_sequence_length(examples, seq) for seq in batch_plan]
    parts: list[list[list[int]]] = []
    width = 0  # padded length of the current micro-batch: that of its first (longest) sequence
    for i in sorted(range(len(batch_plan)), key=lambda i: -lengths[i]):
        if parts and (len(parts[-1]) + 1) * width <= max_tokens:
            parts[-1].append(batch_plan[i])
        else:
            parts.append([batch_plan[i]])
            width = _padded(lengths[i], pad_to_multiple)
    return parts


def micro_batch_shape(longest: int, batch_size: int, max_tokens: Optional[int],
                      pad_to_multiple: int = 8) -> tuple[int, int]:
    """(rows, padded length) bounding ``split_batch``'s biggest micro-batch for rows of at most ``longest``
    tokens: the whole batch without a budget, else as many longest rows as the budget holds (at least one)."""
    width = _padded(longest, pad_to_multiple)
    if not max_tokens:
        return batch_size, width
    return max(1, min(batch_size, max_tokens // width)), width


def collate(examples: list[Example], batch_plan: list[list[int]], pad_id: int, pad_to_multiple: int = 8) -> Batch:
    """Pad one planned batch into arrays; each sequence is its rows laid end to end."""
    length = _padded_length(examples, batch_plan, pad_to_multiple)
    shape = (len(batch_plan), length)
    ids = np.full(shape, pad_id if pad_id is not None else 0, dtype=np.int32)
    mask = np.zeros(shape, dtype=np.int8)
    segments = np.zeros(shape, dtype=np.int32)
    for b, sequence in enumerate(batch_plan):
        pos = 0
        for k, r in enumerate(sequence, start=1):
            e = examples[r]
            n = len(e.input_ids)
            ids[b, pos: pos + n] = e.input_ids
            mask[b, pos: pos + n] = e.loss_mask
            segments[b, pos: pos + n] = k
            pos += n
    return Batch(input_ids=ids, loss_mask=mask, segment_ids=segments, n_rows=sum(len(s) for s in batch_plan))


def padding_fraction(examples: list[Example], plan: list[list[list[int]]], pad_to_multiple: int = 8) -> float:
    """Share of the batch arrays that is padding, as ``collate`` would build them."""
    cells = real = 0
    for batch in plan:
        cells += len(batch) * _padded_length(examples, batch, pad_to_multiple)
        real += sum(len(examples[r].input_ids) for seq in batch for r in seq)
    return 1.0 - real / cells if cells else 0.0


def _sequence_length(examples: list[Example], sequence: list[int]) -> int:
    return sum(len(examples[r].input_ids) for r in sequence)


def _padded(length: int, multiple: int) -> int:
    """``length`` rounded up to a multiple of ``multiple`` (at least one multiple): the arrays' width."""
    multiple = max(1, multiple)
    return max(multiple, -(-length // multiple) * multiple)


def _padded_length(examples: list[Example], batch_plan: list[list[int]], multiple: int) -> int:
    return _padded(max((_sequence_length(examples, seq) for seq in batch_plan), default=0), multiple)
