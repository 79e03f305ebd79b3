"""Which questions a run's before/after table asks: a file, the bundled eval set, or the user's own held-out rows.

With ``--data`` and no ``--compare-questions``, the table asks the last user turn of each row of the run's
validation split, with that row's assistant answer as the reference, and ``compare.json`` records the source
and the forgetting score; ``mlxsft eval --adapter RUN --compare`` asks the same questions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxsft.config import load_config
from mlxsft.errors import DataError
from mlxsft.evaluate import EvalOptions, bundled_questions_path, questions_from_split, run_eval, run_questions
from mlxsft.train import run_training
from tests.helpers import ROWS, make_cfg


def test_user_data_gives_its_validation_rows_as_questions(data_dir):
    cfg = load_config(None, dict(data=str(data_dir)))
    questions, source = run_questions(cfg)
    assert source == f"{data_dir} (valid split)"
    assert [(q.text, q.reference, q.category) for q in questions] == [(q, a, "your data") for q, a in ROWS[:4]]


def test_multi_turn_rows_ask_their_last_user_turn_with_the_history(tmp_path):
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4"}]}]
    (tmp_path / "train.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (tmp_path / "valid.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (q,) = questions_from_split(load_config(None, dict(data=str(tmp_path))).data)
    assert q.text == "2+2?" and q.reference == "4" and [m["role"] for m in q.messages] == ["system", "user",
                                                                                           "assistant", "user"]


def test_bundled_data_and_a_named_file(tmp_path):
    assert run_questions(load_config(None, {}))[1] == str(bundled_questions_path())
    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "Capital of Peru?", "reference": "Lima"}\n')
    questions, source = run_questions(load_config(None, dict(data="x.jsonl", compare_questions=str(f))))
    assert source == str(f) and [q.reference for q in questions] == ["Lima"]


def test_user_data_without_a_validation_split_is_one_clear_error(tmp_path):
    (tmp_path / "only.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "a"},
                                                                   {"role": "assistant", "content": "b"}]}) + "\n")
    with pytest.raises(DataError, match="no validation split") as e:
        run_questions(load_config(None, dict(data=str(tmp_path / "only.jsonl"))))
    assert "--compare-questions" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("trainer", ["mlx", "torch"])
def test_a_run_on_user_data_asks_its_held_out_rows_and_scores_forgetting(tiny_llama_dir, data_dir, tmp_path, trainer):
    if trainer == "torch":
        pytest.importorskip("peft")
    out = tmp_path / "run"
    run_training(make_cfg(tiny_llama_dir, data_dir, out, trainer=trainer, iters=3, compare=True,
                          compare_max_tokens=4))
    saved = json.loads((out / "compare.json").read_text())
    assert saved["questions_from"] == f"{data_dir} (valid split)"
    assert [r["question"] for r in saved["rows"]] == [q for q, _ in ROWS[:4]]
    assert all(set(r["finish_reason"]) == {"base", "tuned"} for r in saved["rows"])
    assert {"wins", "regressions", "unchanged"} <= set(saved["totals"])
    f = saved["forgetting"]
    assert f["prompts"] == 16 and 0 < f["tokens"] <= 16 * 4 and f["kl"] >= 0 and f["base_nll"] > 0
    # eval --compare of the same run asks the same questions and measures the same forgetting score
    report = run_eval(EvalOptions(adapter=str(out), compare=True, max_tokens=4)).questions
    assert [r.question for r in report.rows] == [q for q, _ in ROWS[:4]]
    assert [r.answers for r in report.rows] == [r["answers"] for r in saved["rows"]]
    assert report.forgetting.kl == pytest.approx(f["kl"], rel=1e-3, abs=1e-6)
