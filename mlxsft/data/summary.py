"""Numbers about a prepared split for ``mlxsft data stats``: lengths, a histogram, supervision, padding.

    from mlxsft.data.summary import describe_split
    info = describe_split(prepared, batch_size=8)   # plain dict; cli/ui/data.py renders it
"""

from __future__ import annotations

import numpy as np

from mlxsft.data.batching import padding_fraction, plan_batches
from mlxsft.data.records import PreparedSplit

HISTOGRAM_BINS = 10


def describe_split(split: PreparedSplit, batch_size: int) -> dict:
    lengths = np.asarray([len(e.input_ids) for e in split.examples], dtype=np.int64)
    max_seq_len = int(split.stats.get("max_seq_len", int(lengths.max())))
    counts, edges = np.histogram(lengths, bins=HISTOGRAM_BINS, range=(0, max(max_seq_len, int(lengths.max()))))
    pad = {}
    for pack in (False, True):
        plan = plan_batches(lengths.tolist(), batch_size, max_seq_len=max_seq_len, pack=pack, seed=0, epoch=0)
        pad["packed" if pack else "unpacked"] = {"padding_fraction": padding_fraction(split.examples, plan),
                                                 "batches": len(plan)}
    return {
        **split.stats,
        "length": {"min": int(lengths.min()), "median": float(np.median(lengths)),
                   "p95": float(np.percentile(lengths, 95)), "max": int(lengths.max()), "mean": float(lengths.mean())},
        "histogram": [(int(a), int(b), int(c)) for a, b, c in zip(edges[:-1], edges[1:], counts)],
        "batch_size": batch_size,
        "padding": pad,
    }
