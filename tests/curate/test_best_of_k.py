"""best-of-k with scripted candidates: the best one wins, the threshold rejects, the report counts, resume."""

from __future__ import annotations

import pytest

from mlxsft.curate.best_of_k import BestOfKOptions, best_of_k, pick_best
from mlxsft.curate.scorers import ReferenceScorer
from mlxsft.curate.teachers import Completion, Sampling
from mlxsft.errors import ConfigError, DataError
from tests.curate.conftest import ARITHMETIC, ScriptedTeacher, arithmetic_prompts, read_jsonl, write_jsonl


def candidates(q, n):
    """Prompt i gets candidates: a wrong number, then the right one in a sentence (0.5 or 1.0), per question."""
    a, b = (int(x) for x in q.split("What is ")[1].split("?")[0].split(" + "))
    right = a + b
    if a == 2:  # never right: rejected with a threshold
        return str(right + 1)
    if a == 7:  # only contains the reference next to another number: 0.5
        return [str(right + 2), f"{right} or {right + 1}", str(right - 1)][n % 3]
    return [str(right - 1), f"It is {right}.", str(right)][n % 3]


def test_best_candidate_is_kept_and_low_scores_rejected(tmp_path):
    path = arithmetic_prompts(tmp_path / "math.jsonl")
    gen = ScriptedTeacher(candidates, name="sampler")
    opts = BestOfKOptions(prompts=path, out=tmp_path / "best.jsonl", k=3, sampling=Sampling(temp=0.8),
                          threshold=1.0, batch_size=6)
    res = best_of_k(gen, ReferenceScorer(), opts)
    kept, rejected = read_jsonl(opts.out), read_jsonl(tmp_path / "best.rejected.jsonl")
    assert gen.batches == [6, 6, 6]  # 2 prompts x 3 candidates per batch
    assert (res.accepted, res.rejected, res.acceptance_rate) == (4, 2, 4 / 6)
    assert [r["meta"]["prompt_id"] for r in kept] == [f"add-{a}-{b}" for a, b in ARITHMETIC if a not in (2, 7)]
    assert {r["meta"]["prompt_id"]: r["meta"]["score"] for r in rejected} == {"add-2-3": 0.0, "add-7-5": 0.5}
    first = kept[0]["meta"]
    # candidates "13", "It is 14.", "14" score 0, 1, 1: the first best wins
    assert first["scores"] == [0.0, 1.0, 1.0] and first["best"] == 1 and first["accepted"] is True
    assert kept[0]["messages"][-1] == {"role": "assistant", "content": "It is 14."}
    assert {k: first[k] for k in ("step", "model", "scorer", "k", "threshold", "reference")} == \
        {"step": "best-of-k", "model": "sampler", "scorer": "reference", "k": 3, "threshold": 1.0, "reference": "14"}
    assert rejected[0]["meta"]["accepted"] is False
    # the distributions: best per prompt 0, 0.5, 1, 1, 1, 1; candidates 4 x (0, 1, 1) + (0, 0, 0) + (0, 0.5, 0)
    assert res.best.histogram == [(0.0, 0.0, 1), (0.5, 0.5, 1), (1.0, 1.0, 4)]
    assert res.best.median == 1.0 and res.best.mean == pytest.approx(4.5 / 6)
    assert res.candidates.n == 18 and res.candidates.mean == pytest.approx(8.5 / 18)
    d = res.to_dict()
    assert d["acceptance_rate"] == pytest.approx(2 / 3) and d["best_scores"]["n"] == 6


def test_without_a_threshold_every_prompt_is_kept_and_resume_reports_the_whole_job(tmp_path):
    path = arithmetic_prompts(tmp_path / "math.jsonl")
    opts = BestOfKOptions(prompts=path, out=tmp_path / "best.jsonl", k=3, batch_size=3)
    with pytest.raises(KeyboardInterrupt):
        best_of_k(ScriptedTeacher(candidates, fail_after=2), ReferenceScorer(), opts)
    assert len(read_jsonl(opts.out)) == 2
    gen = ScriptedTeacher(candidates)
    res = best_of_k(gen, ReferenceScorer(), opts)
    assert res.resumed == 2 and res.accepted == 6 and res.rejected == 0 and res.acceptance_rate == 1.0
    assert len(gen.asked) == 4  # the two finished prompts were not sampled again
    assert res.best.n == 6  # the report covers rows from both runs


def test_failed_candidates_are_skipped_and_a_prompt_with_none_left_is_not_written(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "What is 1 + 1?", "reference": "2"},
                                              {"question": "What is 2 + 2?", "reference": "4"}])

    def flaky(q, n):
        if "1 + 1" in q:
            return Completion("", finish_reason="error", error="HTTP 400")
        return Completion("", finish_reason="error", error="HTTP 400") if n == 0 else "4"

    res = best_of_k(ScriptedTeacher(flaky), ReferenceScorer(),
                    BestOfKOptions(prompts=path, out=tmp_path / "o.jsonl", k=2))
    assert (res.failed, res.accepted) == (1, 1)
    assert read_jsonl(tmp_path / "o.jsonl")[0]["meta"]["scores"] == [1.0]


def test_checks_before_sampling(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "no reference"}])
    gen = ScriptedTeacher(lambda q, n: "x")
    with pytest.raises(DataError, match=r"p.jsonl:1: reference: missing"):
        best_of_k(gen, ReferenceScorer(), BestOfKOptions(prompts=path, out=tmp_path / "o.jsonl"))
    with pytest.raises(ConfigError, match="--temp 0 samples the same answer"):
        best_of_k(gen, ReferenceScorer(), BestOfKOptions(prompts=path, out=tmp_path / "o.jsonl",
                                                         sampling=Sampling(temp=0.0)))
    assert gen.asked == {} and not (tmp_path / "o.jsonl").exists()


def test_pick_best_prefers_numbers_over_missing_and_the_first_on_ties():
    assert pick_best([None, 0.2, 0.9, 0.9]) == 2
    assert pick_best([None, None]) == 0
    assert pick_best([-3.5, -1.25, None]) == 1


def test_a_teacher_that_refills_rows_is_asked_its_answers_per_call(tmp_path):
    path = arithmetic_prompts(tmp_path / "math.jsonl")
    gen = ScriptedTeacher(candidates)
    gen.answers_per_call = 12  # a local model: more answers per call than rows decoded together
    res = best_of_k(gen, ReferenceScorer(), BestOfKOptions(prompts=path, out=tmp_path / "best.jsonl", k=3,
                                                           batch_size=3))
    assert gen.batches == [12, 6]  # 4 whole prompts, then the last 2
    assert res.accepted == 6 and len(read_jsonl(tmp_path / "best.jsonl")) == 6
