"""Scorers on fixtures with known answers: reference, judge (rating parsing and the rubric prompt), logprob
(against a direct computation), python (a user's file and module)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from mlxsft.curate.prompts import to_prompt
from mlxsft.curate.scorers import (JUDGE_PROMPT, JudgeScorer, LogprobScorer, ReferenceScorer, judge_messages,
                                          make_scorer, parse_rating)
from mlxsft.errors import ConfigError
from tests.curate.conftest import ScriptedTeacher


def prompt(question="What is 17 + 25?", reference="42", **extra):
    return to_prompt({"question": question, "reference": reference, **extra}, "p.jsonl", 1)


REFERENCE_CASES = [  # answer, reference, auto, exact, numeric, contains
    ("42", "42", 1.0, 1, 1, 1),
    ("The answer is 42.", "42", 1.0, 0, 1, 1),
    ("17 + 25 = 42", "42", 1.0, 0, 1, 1),
    ("41", "42", 0.0, 0, 0, 0),
    ("42 is wrong, it is 43", "42", 0.5, 0, 0, 1),
    ("1,234", "1234", 1.0, 0, 1, 0),
    ("  PARIS. ", "Paris", 1.0, 1, 0, 1),
    ("The capital is Paris", "Paris", 0.5, 0, 0, 1),
    ("Lyon", "Paris", 0.0, 0, 0, 0),
]


@pytest.mark.parametrize("answer, reference, auto, exact, numeric, contains", REFERENCE_CASES)
def test_reference_scorer_modes(answer, reference, auto, exact, numeric, contains):
    p = prompt(reference=reference)
    assert make_scorer("reference").score([(p, answer)]) == [auto]
    assert ReferenceScorer("exact").score([(p, answer)]) == [float(exact)]
    assert ReferenceScorer("numeric").score([(p, answer)]) == [float(numeric)]
    assert ReferenceScorer("contains").score([(p, answer)]) == [float(contains)]


def test_parse_rating_reads_the_usual_reply_shapes():
    assert [parse_rating(t) for t in ("Score: 7", "score=10", "**Score:** 3/10", "8", "8/10 - good",
                                      "I'd say 9", "Rating: excellent", "Score: 11", "")] == \
        [7.0, 10.0, 3.0, 8.0, 8.0, 9.0, None, None, None]


def test_judge_sees_the_rubric_question_answer_and_reference_and_scores_its_reply():
    seen = []

    def judge(q, n):
        seen.append(q)
        return "Score: 9" if "Answer:\n<<<\n42\n>>>" in q else "no idea"

    scorer = JudgeScorer(ScriptedTeacher(judge))
    assert scorer.score([(prompt(), "42"), (prompt(), "41")]) == [9.0, None]
    assert scorer.unparsed == 1
    assert "Request:\n<<<\nWhat is 17 + 25?\n>>>" in seen[0] and "Reference: 42" in seen[0]
    assert seen[0].startswith(JUDGE_PROMPT.split("\n")[0])
    no_ref = judge_messages(prompt(reference=None), "x")
    assert no_ref[0]["role"] == "system" and "Reference:" not in no_ref[1]["content"]


def test_python_scorer_from_a_file_and_a_module(tmp_path, monkeypatch):
    (tmp_path / "my_scores.py").write_text(
        "def length(prompt, response):\n    return len(response) + (100 if prompt.get('bonus') else 0)\n"
        "def bad(prompt, response):\n    return 'high'\n"
        "def boom(prompt, response):\n    raise ValueError('nope')\n")
    p = prompt(bonus=True)
    assert make_scorer(f"python:{tmp_path / 'my_scores.py'}:length").score([(p, "abc")]) == [103.0]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [x for x in sys.path if x not in ("", ".")])
    assert make_scorer("python:my_scores:length").score([(prompt(), "ab")]) == [2.0]
    with pytest.raises(ConfigError, match=r"returned str for p.jsonl:1; expected a number"):
        make_scorer("python:my_scores:bad").score([(p, "x")])
    with pytest.raises(ConfigError, match=r"python:my_scores:boom failed on p.jsonl:1: ValueError: nope"):
        make_scorer("python:my_scores:boom").score([(p, "x")])
    with pytest.raises(ConfigError, match="has no function missing"):
        make_scorer("python:my_scores:missing")
    with pytest.raises(ConfigError, match="cannot import no_such_module"):
        make_scorer("python:no_such_module:f")


def test_python_scorer_never_puts_the_current_folder_on_sys_path(tmp_path, monkeypatch):
    # a stray module in the current folder named like one the scorer (or anything later) imports
    (tmp_path / "colorsys.py").write_text("raise RuntimeError('the stray colorsys.py in the current folder ran')\n")
    (tmp_path / "hue_scores.py").write_text(
        "import colorsys\n\ndef hue(prompt, response):\n"
        "    return colorsys.rgb_to_hsv(0.0, 1.0, 0.0)[0] * 3 + len(response)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [x for x in sys.path if x not in ("", ".", str(tmp_path))])
    before = list(sys.path)
    for spec in ("python:hue_scores:hue", "python:./hue_scores.py:hue", f"python:{tmp_path / 'hue_scores.py'}:hue"):
        monkeypatch.delitem(sys.modules, "colorsys", raising=False)
        assert make_scorer(spec).score([(prompt(), "ab")]) == [3.0]  # green: hue 1/3
        assert sys.path == before
        assert Path(sys.modules["colorsys"].__file__).parent != tmp_path  # the standard library's


def test_unknown_or_incomplete_scorer_specs_are_config_errors():
    for spec, msg in (("vibes", "unknown scorer"), ("judge:", "needs a model spec"), ("logprob:", "needs a local"),
                      ("reference:fuzzy", "expected one of auto, exact"), ("python:nofunction", "expected python:")):
        with pytest.raises(ConfigError, match=msg):
            make_scorer(spec)
    with pytest.raises(ConfigError, match="needs a local model"):
        make_scorer("logprob:http://127.0.0.1:1/v1")


def test_logprob_scorer_equals_a_direct_log_softmax_over_the_response_tokens(tiny_mlx_dir):
    import mlx.core as mx

    from mlxsft.backends.mlx.generate import render_prompt

    scorer = make_scorer(f"logprob:{tiny_mlx_dir}")
    assert isinstance(scorer, LogprobScorer)
    p = prompt()
    response = "The answer is forty-two."
    got = scorer.score([(p, response), (p, "")])
    ids_prompt = render_prompt(scorer.hf, p.messages, scorer.template)
    ids_answer = scorer.hf.encode(response, add_special_tokens=False)
    ids = ids_prompt + ids_answer
    logits = scorer.model(mx.array([ids[:-1]])).astype(mx.float32)
    logp = np.array(logits - mx.logsumexp(logits, axis=-1, keepdims=True))[0]
    want = float(np.mean([logp[t - 1, ids[t]] for t in range(len(ids_prompt), len(ids))]))
    assert got[1] is None  # nothing to score
    assert math.isclose(got[0], want, rel_tol=1e-4) and want < 0
