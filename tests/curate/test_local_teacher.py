"""The local MLX teacher on the tiny model: greedy answers match the eval path's batched generation, sampling is
seeded, and best-of-k / distill run end to end through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlxsft.curate.teachers import LocalTeacher, Sampling
from tests.curate.conftest import arithmetic_prompts, read_jsonl

ENV = dict(os.environ, MLXSFT_NO_BLAS_REEXEC="1")
CONVS = [[{"role": "user", "content": q}] for q in ("What is 2 + 3?", "Name a colour.", "Say hi.")]


@pytest.fixture(scope="module")
def local(tiny_mlx_dir):
    return LocalTeacher(str(tiny_mlx_dir), batch_size=8)


def test_greedy_answers_equal_the_batched_eval_generation(local):
    from mlxsft.backends.mlx.generate import generate_answers_batch

    got = local.complete(CONVS, Sampling(temp=0.0, max_tokens=6))
    want = generate_answers_batch(local.model, local.tokenizer, CONVS, local.template, max_tokens=6)
    assert [c.text for c in got] == [a.text for a in want]
    assert all(c.tokens == 6 and c.finish_reason == "length" for c in got)  # a random model never stops


def test_a_local_judge_scores_what_it_can_parse(tiny_mlx_dir):
    from mlxsft.curate.prompts import to_prompt
    from mlxsft.curate.scorers import JudgeScorer, make_scorer

    scorer = make_scorer(f"judge:{tiny_mlx_dir}")
    assert isinstance(scorer, JudgeScorer) and scorer.name == f"judge:{tiny_mlx_dir}"
    p = to_prompt({"question": "What is 2 + 3?", "reference": "5"}, "p.jsonl", 1)
    scores = scorer.score([(p, "5"), (p, "7")])
    # a random model's reply rarely holds a rating: whatever it says is parsed, or counted as unparsed
    assert len(scores) == 2 and all(s is None or 1 <= s <= 10 for s in scores)
    assert scorer.unparsed == sum(s is None for s in scores)


def test_sampling_is_seeded_and_varies_between_samples(tiny_mlx_dir):
    a = LocalTeacher(str(tiny_mlx_dir)).complete(CONVS[:1] * 4, Sampling(temp=1.0, max_tokens=5, seed=3))
    b = LocalTeacher(str(tiny_mlx_dir)).complete(CONVS[:1] * 4, Sampling(temp=1.0, max_tokens=5, seed=3))
    assert [c.text for c in a] == [c.text for c in b]
    assert len({c.text for c in a}) > 1


def test_a_sampled_answer_depends_on_its_prompt_and_repeat_not_on_the_rest_of_the_call(local):
    sampling = Sampling(temp=1.0, max_tokens=5, seed=3)
    together = local.complete(CONVS + CONVS[:1], sampling)
    alone = local.complete(CONVS[2:3], sampling)
    assert together[2].text == alone[0].text  # a resumed run draws what a whole run would
    assert together[3].text != together[0].text  # the second ask of a prompt is another sample
    assert local.complete(CONVS[2:3], Sampling(temp=1.0, max_tokens=5, seed=4))[0].text != alone[0].text


def test_cli_best_of_k_with_the_tiny_model_writes_rows_rejects_and_a_report(tiny_mlx_dir, tmp_path):
    prompts = arithmetic_prompts(tmp_path / "math.jsonl")
    out, report = tmp_path / "best.jsonl", tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "mlxsft", "data", "best-of-k", "--model", str(tiny_mlx_dir),
                        "--prompts", str(prompts), "--k", "2", "--scorer", "reference", "--threshold", "1",
                        "--max-tokens", "4", "--out", str(out), "--report", str(report)],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr
    kept, rejected = read_jsonl(out), read_jsonl(tmp_path / "best.rejected.jsonl")
    assert len(kept) + len(rejected) == 6  # a random model: nearly everything is rejected, but every prompt is done
    import json

    rep = json.loads(report.read_text())
    assert rep["accepted"] == len(kept) and rep["rejected"] == len(rejected) and rep["candidate_scores"]["n"] == 12
    assert "acceptance rate" in r.stdout and "score distribution" in r.stdout
    assert all(len(row["meta"]["scores"]) == 2 and row["meta"]["model"] == str(tiny_mlx_dir) for row in rejected)
