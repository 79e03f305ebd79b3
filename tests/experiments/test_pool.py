"""The mixed pool of ``mlxsft experiment curation``: planted-defect labels, their rates (golden counts from a
seed), that each label is what it says, and that the held-out eval questions stay out of it."""

from __future__ import annotations

import hashlib
import random

import pytest

from mlxsft.data.bundled.make_dataset import EVAL_PER_TASK, SEED, draw_task_rows
from mlxsft.data.bundled.tasks import TASKS
from mlxsft.experiments.pool import DEFECTS, LABELS, PoolSpec, build_pool, eval_questions
from mlxsft.scoring import exact_match

# seed 0, the defaults: 4 x the 300 bundled rows, the rates of DEFAULT_RATES
GOLDEN_COUNTS = {"clean": 600, "wrong": 96, "truncated": 72, "wrong_format": 96, "rambling": 72, "exact_dup": 72,
                 "near_dup": 72, "paraphrase": 120}
GOLDEN_DIGEST = "bb4dd1dc10516aaf"  # sha256 of pool.jsonl's bytes, first 16 hex digits


@pytest.fixture(scope="module")
def pool():
    return build_pool(PoolSpec(seed=0))


def _answer(row: dict) -> str:
    return row["messages"][-1]["content"]


def _question(row: dict) -> str:
    return next(m["content"] for m in reversed(row["messages"]) if m["role"] == "user")


def test_golden_counts_and_bytes(pool, tmp_path):
    assert len(pool.rows) == 1200
    assert pool.label_counts() == GOLDEN_COUNTS
    path = pool.write(tmp_path / "pool.jsonl")
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:16] == GOLDEN_DIGEST
    assert [r["id"] for r in pool.rows] == [f"pool-{i:05d}" for i in range(1200)]
    assert set(pool.labels) == {r["id"] for r in pool.rows}
    # about 80% of the generated rows carry their reference (the bundled 300 carry none)
    with_ref = sum("reference" in r for r in pool.rows)
    assert 0.7 * 900 < with_ref < 0.9 * 900


def test_the_same_seed_gives_the_same_pool_and_another_seed_another():
    a, b, c = build_pool(PoolSpec(seed=3, size=800)), build_pool(PoolSpec(seed=3, size=800)), \
        build_pool(PoolSpec(seed=4, size=800))
    assert a.rows == b.rows and a.labels == b.labels
    assert a.rows != c.rows
    # the counts follow the rates at any size; the paraphrases come in whole groups (6 of 13)
    assert a.label_counts() == c.label_counts() == {"clean": 402, "wrong": 64, "truncated": 48,
                                                    "wrong_format": 64, "rambling": 48, "exact_dup": 48,
                                                    "near_dup": 48, "paraphrase": 78}


def test_each_label_is_what_it_says(pool):
    by_label = {label: [r for r in pool.rows if pool.labels[r["id"]] == label] for label in LABELS}
    for r in by_label["wrong"] + by_label["truncated"] + by_label["wrong_format"] + by_label["rambling"]:
        if "reference" in r:  # the answer is not the reference, whatever the scorer's normalisation
            assert not exact_match(_answer(r), r["reference"]), r
    for r in by_label["truncated"]:
        if "reference" in r:
            assert r["reference"].startswith(_answer(r)) and len(_answer(r)) < len(r["reference"])
    for r in by_label["rambling"]:
        assert len(_answer(r).split()) > 60
    for r in by_label["clean"] + by_label["paraphrase"] + by_label["near_dup"] + by_label["exact_dup"]:
        if "reference" in r:
            assert exact_match(_answer(r), r["reference"]), r
    seen: list[dict] = []
    for r in pool.rows:  # a copy comes after what it copies
        label = pool.labels[r["id"]]
        if label == "exact_dup":
            assert any(s["messages"] == r["messages"] for s in seen)
        if label == "near_dup":
            assert any(_question(s) in _question(r) and _question(s) != _question(r) or
                       _question(r) in _question(s) and _question(s) != _question(r)
                       for s in seen if _answer(s) == _answer(r))
        seen.append(r)
    # a few prompts, many times: every paraphrase shares its answer and task with its group's clean first row
    assert len({_answer(r) for r in by_label["paraphrase"]}) <= 6


def test_no_pool_row_asks_a_held_out_question(pool):
    held_out = eval_questions()
    assert len(held_out) == 60
    asked = {m["content"] for r in pool.rows for m in r["messages"] if m["role"] == "user"}
    assert not asked & held_out
    # and the pool's prompts are drawn after the eval instances by the same sampler: none is one of them
    sampler, evaluation, _, _ = draw_task_rows(random.Random(SEED))
    assert {e["question"] for e in evaluation} <= held_out
    assert len(sampler.used) >= len(TASKS) * EVAL_PER_TASK


def test_defect_names_are_the_labels():
    assert LABELS == ("clean", *DEFECTS)


def test_a_pool_too_small_for_its_rates_is_a_config_error():
    from mlxsft.errors import ConfigError

    with pytest.raises(ConfigError, match="room for fewer clean rows than the 300 bundled ones"):
        build_pool(PoolSpec(size=600))
