"""Numbers about a prepared split for ``mlxsft data stats`` and the report: lengths, a histogram, supervision,
padding, and a few rows as tokens with the supervised ones marked (what ``mlxsft data inspect`` shows).

    from mlxsft.data.summary import describe_split, sample_rows, token_spans
    info = describe_split(prepared, batch_size=8)   # plain dict; cli/ui/data.py renders it
    rows = sample_rows(prepared, tokenizer.decode)  # [{"row", "pieces", "mask"}], for data_summary.json
    token_spans(pieces, mask, max_seq_len)          # runs of context / supervised / cut tokens, to render

Training writes ``describe_split`` and ``sample_rows`` of its splits into the run folder (``data_summary.json``,
``mlxsft/train.py``), so the report shows the data as the model saw it without loading a tokenizer again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from mlxsft.data.batching import padding_fraction, plan_batches
from mlxsft.data.records import PreparedSplit

HISTOGRAM_BINS = 10
SAMPLE_ROWS = 3
NEWLINE_MARK = "↵"  # shown before a line break inside a token, so a newline token is visible


def describe_split(split: PreparedSplit, batch_size: int, bins: int = HISTOGRAM_BINS) -> dict:
    lengths = np.asarray([len(e.input_ids) for e in split.examples], dtype=np.int64)
    max_seq_len = int(split.stats.get("max_seq_len", int(lengths.max())))
    counts, edges = np.histogram(lengths, bins=bins, range=(0, max(max_seq_len, int(lengths.max()))))
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


def sample_rows(split: PreparedSplit, decode: Callable[[list[int]], str], n: int = SAMPLE_ROWS) -> list[dict]:
    """The first ``n`` examples as training sees them: each token decoded alone, and its loss mask."""
    return [{"row": e.row, "pieces": [decode([int(t)]) for t in e.input_ids], "mask": [int(m) for m in e.loss_mask]}
            for e in split.examples[:n]]


@dataclass
class Span:
    text: str  # the tokens' text, newlines marked with NEWLINE_MARK
    supervised: bool
    cut: bool  # past max_seq_len: truncated away (or the row dropped)


def token_spans(pieces: list[str], mask: list[int], max_seq_len: int) -> list[Span]:
    """Consecutive tokens of the same kind joined: what ``data inspect`` and the report highlight."""
    spans: list[Span] = []
    for i, (piece, m) in enumerate(zip(pieces, mask)):
        text, supervised, cut = piece.replace("\n", NEWLINE_MARK + "\n"), bool(m), i >= max_seq_len
        if spans and (spans[-1].supervised, spans[-1].cut) == (supervised, cut):
            spans[-1].text += text
        else:
            spans.append(Span(text, supervised, cut))
    return spans
