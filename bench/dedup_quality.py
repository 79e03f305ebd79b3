"""How well near dedup's MinHash LSH finds the pairs of texts at or above a Jaccard threshold, against an exact
computation: precision and recall of the pairs.

    quality = pair_quality(texts, threshold=0.8, backend="rensa")     # {"precision": .., "recall": .., ...}

Exact side: every pair whose word 3-gram sets (``dedup.shingles``, as near dedup compares them) have a Jaccard
similarity >= ``threshold``, found with prefix filtering (two sets that similar must share one of the rarest
``|x| - ceil(t |x|) + 1`` shingles of each), then verified exactly, so no pair is missed and nothing is estimated.
MinHash side: the pairs near dedup can report: in one LSH bucket of some band (``dedup.band_hashes`` with
``dedup.optimal_bands``) with an estimated similarity (the signatures' agreement) >= ``threshold``. Exact
duplicates (equal normalised text) are left out on both sides, as the filter removes them first.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from itertools import combinations

import numpy as np

from mlxsft.curate.dedup import band_hashes, normalize_text, optimal_bands, shingles
from mlxsft.curate.minhash import make_minhasher, resolve_backend


def exact_pairs(sets: list[set[str]], threshold: float) -> set[tuple[int, int]]:
    freq = Counter(s for x in sets for s in x)
    index: dict[str, list[int]] = defaultdict(list)
    candidates: set[tuple[int, int]] = set()
    for j, x in enumerate(sets):
        ordered = sorted(x, key=lambda s: (freq[s], s))  # rarest first
        prefix = ordered[: len(x) - math.ceil(threshold * len(x)) + 1]
        for s in prefix:
            for i in index[s]:
                candidates.add((i, j))
            index[s].append(j)
    return {(i, j) for i, j in candidates if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= threshold}


def minhash_pairs(sets: list[set[str]], threshold: float, backend: str, num_perm: int = 128,
                  seed: int = 1) -> set[tuple[int, int]]:
    sigs = make_minhasher(num_perm, seed, backend).signatures(sets)
    b, r = optimal_bands(threshold, num_perm)
    bands = band_hashes(sigs, b, r)
    found: set[tuple[int, int]] = set()
    for band in range(b):
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, h in enumerate(bands[:, band].tolist()):
            buckets[h].append(i)
        for members in buckets.values():
            for i, j in combinations(members, 2):
                if (i, j) not in found and float(np.mean(sigs[i] == sigs[j])) >= threshold:
                    found.add((i, j))
    return found


def pair_quality(texts: list[str], threshold: float = 0.8, backend: str = "auto") -> dict:
    seen: set[str] = set()
    distinct = []
    for t in texts:  # exact duplicates leave first, as in the filter
        norm = normalize_text(t)
        if norm not in seen:
            seen.add(norm)
            distinct.append(norm)
    sets = [shingles(t, normalized=True) for t in distinct]
    truth = exact_pairs(sets, threshold)
    found = minhash_pairs(sets, threshold, backend)
    hit = len(truth & found)
    return {"backend": resolve_backend(backend), "rows": len(texts), "distinct_rows": len(distinct),
            "threshold": threshold, "exact_pairs": len(truth), "minhash_pairs": len(found),
            "precision": hit / len(found) if found else 1.0, "recall": hit / len(truth) if truth else 1.0}
