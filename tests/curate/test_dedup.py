"""Dedup on planted duplicates: exact copies after normalisation, and near copies (one word in 40 changed)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mlxsft.curate.dedup import EXACT, KEEP, NEAR, DedupIndex, normalize_text, optimal_bands, shingles
from mlxsft.curate.minhash import rensa_available

VOCAB = ("river mountain cloud engine garden python violin ocean copper lantern forest pencil orbit harbor "
         "meadow silver thunder candle marble desert falcon glacier island jungle kettle ladder magnet needle "
         "oyster pepper quartz rocket saddle tunnel umbrella valley walnut yacht zebra anchor basket cactus").split()


def paragraphs(n: int, words: int = 40, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCAB) for _ in range(words)) for _ in range(n)]


def change_words(text: str, k: int, seed: int) -> str:
    rng = random.Random(seed)
    words = text.split()
    for i in rng.sample(range(len(words)), k):
        words[i] = "CHANGED"
    return " ".join(words)


def resolve(tmp_path, texts, **kw):
    index = DedupIndex(tmp_path, **kw)
    for t in texts:
        index.add(t)
    return index.resolve()


def test_exact_dedup_ignores_case_spacing_and_punctuation(tmp_path):
    d = resolve(tmp_path, ["Hello, World!", "hello   world", "Hello there", "HELLO WORLD."], near=0)
    assert d.kind.tolist() == [KEEP, EXACT, KEEP, EXACT] and d.of.tolist() == [-1, 0, -1, 0]
    assert normalize_text("  Ünïcode—Text\u00a0here ") == "ünïcode text here"


BACKENDS = ["datasketch", pytest.param("rensa", marks=pytest.mark.skipif(
    not rensa_available(), reason="rensa not installed (pip install 'mlxsft[curate]')"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_near_dedup_finds_every_planted_near_copy_and_nothing_else(tmp_path, backend):
    # 80 words, one changed: Jaccard 0.93 each, 5 standard deviations of a 128-permutation estimate above 0.8 (at
    # 40 words, 0.85, each copy is missed ~5% of the time: the bench's recall check measures that edge)
    base = paragraphs(60, words=80)
    planted = {60 + k: i for k, i in enumerate(range(0, 60, 4))}  # row -> the paragraph it copies
    texts = base + [change_words(base[i], 1, seed=i) for i in planted.values()]
    d = resolve(tmp_path, texts, exact=True, near=0.8, minhash=backend)
    assert d.counts() == {"exact_dup": 0, "near_dup": 15}
    assert {i: int(d.of[i]) for i in np.flatnonzero(d.kind == NEAR)} == planted


@pytest.mark.parametrize("backend", BACKENDS)
def test_near_dedup_keeps_texts_below_the_threshold_and_groups_chains(tmp_path, backend):
    base = paragraphs(1, seed=3)[0]
    far = change_words(base, 12, seed=1)  # 12 of 40 words changed: Jaccard of 3-grams ~0.2
    copy = change_words(base, 1, seed=2)
    d = resolve(tmp_path, [base, far, copy, copy.upper(), base], near=0.8, minhash=backend)
    # the upper-case copy is an exact duplicate of row 2, the last row of row 0; row 2 is near row 0
    assert d.kind.tolist() == [KEEP, KEEP, NEAR, EXACT, EXACT] and d.of.tolist() == [-1, -1, 0, 2, 0]


def test_band_parameters_match_the_documented_choice():
    assert optimal_bands(0.8, 128) == (18, 7) and optimal_bands(0.9, 128) == (11, 11)


def test_short_texts_are_one_shingle():
    assert shingles("Hi there") == {"hi there"}
    assert shingles("a b c d") == {"a b c", "b c d"}


def test_dedup_memory_per_row_stays_under_150_bytes(tmp_path):
    """The index keeps 8 bytes a row in memory while rows stream in (the rest goes to disk); resolve needs ~115 bytes
    a row at its peak (numpy arrays: one band column sorted at a time, the union-find)."""
    import tracemalloc

    def peak(n: int) -> int:
        texts = [f"row {i} says {i * 7919 % 1000} and {i % 13}" for i in range(n)]
        folder = tmp_path / str(n)
        folder.mkdir()
        tracemalloc.start()
        resolve(folder, texts, near=0.8)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    peak(100)  # the first call pays for imports and MinHash's permutations
    small, large = peak(500), peak(2500)
    assert (large - small) / 2000 < 150, (small, large)


def test_without_any_minhash_library_near_dedup_asks_for_one_and_exact_dedup_still_works(tmp_path, monkeypatch):
    import sys

    import mlxsft.curate.minhash as minhash
    from mlxsft.errors import ConfigError

    monkeypatch.setitem(sys.modules, "datasketch", None)  # import datasketch -> ImportError
    monkeypatch.setattr(minhash, "rensa_available", lambda: False)
    with pytest.raises(ConfigError, match="near dedup needs datasketch .* or pass --near-dup 0"):
        DedupIndex(tmp_path, near=0.8)
    with pytest.raises(ConfigError, match="--minhash rensa needs the rensa package"):
        DedupIndex(tmp_path, near=0.8, minhash="rensa")
    assert resolve(tmp_path, ["a b", "A  b!"], near=0).kind.tolist() == [KEEP, EXACT]


@pytest.mark.parametrize("backend", BACKENDS)
def test_near_dup_pairs_match_an_exact_jaccard_computation(backend):
    """Precision and recall of the pairs at Jaccard >= 0.8 that MinHash LSH reports, against exact Jaccard, on
    copies well above and well below the threshold (bench/bench_filter.py measures the same on 10k rows of its
    pool)."""
    from bench.dedup_quality import exact_pairs, pair_quality

    base = paragraphs(300, words=80, seed=11)
    copies = [change_words(t, k, seed=i) for i, t in enumerate(base) for k in (1, 2, 8)]  # J ~0.93, ~0.86, ~0.6
    q = pair_quality(base + copies, 0.8, backend)
    assert q["exact_pairs"] >= 550 and q["precision"] >= 0.95 and q["recall"] >= 0.95, q
    # the exact side is exact: prefix filtering finds what comparing every pair finds
    sets = [shingles(t) for t in base[:40] + copies[:120]]
    every = {(i, j) for i in range(len(sets)) for j in range(i + 1, len(sets))
             if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= 0.8}
    assert exact_pairs(sets, 0.8) == every and len(every) >= 70


@pytest.mark.parametrize("backend", BACKENDS)
def test_at_the_threshold_the_exact_check_reports_no_pair_below_it(backend):
    """Copies with three words in 80 changed sit at Jaccard ~0.79: a 128-permutation estimate errs either way about
    as often as not (the estimate alone: precision ~0.94), so near dedup confirms candidates exactly; what is left
    is what LSH misses (recall)."""
    from bench.dedup_quality import pair_quality

    base = paragraphs(150, words=80, seed=11)
    texts = base + [change_words(t, k, seed=i) for i, t in enumerate(base) for k in (1, 2, 3, 8)]
    exact, estimate = pair_quality(texts, 0.8, backend), pair_quality(texts, 0.8, backend, estimate_only=True)
    assert exact["exact_pairs"] == estimate["exact_pairs"] >= 700
    assert exact["precision"] == 1.0 and exact["recall"] >= 0.98, exact
    assert estimate["precision"] < 0.97, estimate  # what the exact check fixes


def test_exact_jaccard_of_pairs_matches_python_sets():
    from mlxsft.curate.dedup import pair_jaccard, shingle_keys

    texts = paragraphs(12, words=30, seed=5) + ["one", "one two", "one two three four"]
    sets = [shingles(t) for t in texts]
    keys = [shingle_keys(s) for s in sets]
    offsets = np.r_[0, np.cumsum([len(k) for k in keys])]
    a, b = np.array([0, 1, 12, 13, 14, 3]), np.array([0, 2, 13, 14, 14, 3])
    got = pair_jaccard(np.concatenate(keys), offsets, a, b)
    want = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for i, j in zip(a, b)]
    assert np.allclose(got, want) and got[0] == 1.0 and got[2] == 0.0
