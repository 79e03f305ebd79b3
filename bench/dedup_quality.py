"""How well near dedup's MinHash LSH finds the pairs of texts at or above a Jaccard threshold, against an exact
computation: precision and recall of the pairs.

    quality = pair_quality(texts, threshold=0.8, backend="rensa")     # {"precision": .., "recall": .., ...}

Exact side: every pair whose word 3-gram sets (``dedup.shingles``, as near dedup compares them) have a Jaccard
similarity >= ``threshold``, found with prefix filtering (two sets that similar must share one of the rarest
``|x| - ceil(t |x|) + 1`` shingles of each), then verified exactly, so no pair is missed and nothing is estimated.
MinHash side: the pairs near dedup can report: in one LSH bucket of some band (``dedup.band_hashes`` with
``dedup.optimal_bands``) and confirmed as near dedup confirms them (``dedup.confirm_pairs``: the signatures'
agreement screens, the exact Jaccard of the shingles' 32-bit keys decides), so precision measures the keys and
recall what LSH misses. ``estimate_only=True`` measures the previous rule, the estimate alone. Exact
duplicates (equal normalised text) are left out on both sides, as the filter removes them first.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from itertools import combinations

import numpy as np

from mlxsft.curate.dedup import band_hashes, confirm_pairs, normalize_text, optimal_bands, shingle_keys, shingles
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


def minhash_pairs(sets: list[set[str]], threshold: float, backend: str, num_perm: int = 128, seed: int = 1,
                  estimate_only: bool = False) -> set[tuple[int, int]]:
    sigs = make_minhasher(num_perm, seed, backend).signatures(sets)
    b, r = optimal_bands(threshold, num_perm, *((0.05, 0.95) if estimate_only else ()))
    bands = band_hashes(sigs, b, r)
    candidates: set[tuple[int, int]] = set()
    for band in range(b):
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, h in enumerate(bands[:, band].tolist()):
            buckets[h].append(i)
        for members in buckets.values():
            candidates.update(combinations(members, 2))
    pairs = np.array(sorted(candidates), dtype=np.int64).reshape(-1, 2)
    a, c = pairs[:, 0], pairs[:, 1]
    if estimate_only:
        ok = (sigs[a] == sigs[c]).mean(axis=1) >= threshold
    else:
        keys = [shingle_keys(s) for s in sets]
        offsets = np.r_[0, np.cumsum([len(k) for k in keys])].astype(np.int64)
        flat = np.concatenate(keys) if keys else np.zeros(0, np.uint32)
        sig16 = (sigs & 0xFFFF).astype(np.uint16)  # as the filter keeps them
        ok = confirm_pairs(sig16[a], sig16[c], flat, offsets, a, c, threshold)
    return {(int(i), int(j)) for i, j in pairs[ok]}


def pair_quality(texts: list[str], threshold: float = 0.8, backend: str = "auto", estimate_only: bool = False
                 ) -> dict:
    seen: set[str] = set()
    distinct = []
    for t in texts:  # exact duplicates leave first, as in the filter
        norm = normalize_text(t)
        if norm not in seen:
            seen.add(norm)
            distinct.append(norm)
    sets = [shingles(t, normalized=True) for t in distinct]
    truth = exact_pairs(sets, threshold)
    found = minhash_pairs(sets, threshold, backend, estimate_only=estimate_only)
    hit = len(truth & found)
    return {"backend": resolve_backend(backend), "confirm": "estimate" if estimate_only else "exact",
            "rows": len(texts), "distinct_rows": len(distinct),
            "threshold": threshold, "exact_pairs": len(truth), "minhash_pairs": len(found),
            "precision": hit / len(found) if found else 1.0, "recall": hit / len(truth) if truth else 1.0}
