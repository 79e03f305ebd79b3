"""The learned-answer report on scripted answerers (golden counts), its order, and compare.json's shape."""

from __future__ import annotations

import json

import pytest

from mlxsft.backends.generation import Answer
from mlxsft.evaluate import Question, compare
from mlxsft.learned import Forgetting, describe, learned_totals, regressions_first

# (question, reference, category, base answer, base finish, tuned answer, tuned finish)
CASES = [
    ("Capital of Peru?", "Lima", "knowledge", "Lima", "stop", "Lima", "stop"),            # unchanged right
    ("Capital of Chile?", "Santiago", "knowledge", "Santiago de", "length", "Bogota", "stop"),  # partial -> wrong
    ("Year in: Tom moved in 1999.", "1999", "extract", "1999 or maybe 2001", "length", "1999", "stop"),  # win
    ("Name in: Ann came.", "Ann", "extract", "Ann", "stop", "Anne", "stop"),                # regression
    ("Plural of box?", "boxes", "rewrite", "box box box", "length", "boxes", "stop"),       # win
    ("Plural of cat?", "cats", "rewrite", "cat", "length", "cat", "stop"),                  # unchanged wrong
    ("Opposite of hot?", "cold", "rewrite", "hot and cold", "length", "cold", "stop"),      # win (partial -> right)
    ("Tell me about tea.", None, "open", "Tea tea tea", "length", "Tea is a drink.", "stop"),  # open
]


def scripted(column: int):
    table = {c[0]: (c[column], c[column + 1]) for c in CASES}

    def answer(messages: list[dict]) -> Answer:
        text, finish = table[messages[-1]["content"]]
        return Answer(text=text, tokens=len(text.split()), tokens_per_sec=1.0, finish_reason=finish)
    return answer


@pytest.fixture
def report():
    questions = [Question(messages=[{"role": "user", "content": q}], reference=ref, category=cat)
                 for q, ref, cat, *_ in CASES]
    return compare({"base": scripted(3), "tuned": scripted(5)}, questions)


def test_golden_totals(report):
    t = learned_totals(report)
    assert (t["questions"], t["wins"], t["regressions"], t["unchanged"]) == (7, 3, 1, 3)
    assert (t["right_before"], t["right_after"]) == (2, 4)
    assert t["open_questions"] == 1
    assert t["per_category"] == {
        "extract": {"questions": 2, "wins": 1, "regressions": 1, "unchanged": 0, "right_before": 1, "right_after": 1},
        "knowledge": {"questions": 2, "wins": 0, "regressions": 0, "unchanged": 2, "right_before": 1,
                      "right_after": 1},
        "rewrite": {"questions": 3, "wins": 2, "regressions": 0, "unchanged": 1, "right_before": 0, "right_after": 2},
    }
    # stop rates over all 8 answers: base stopped on 2, tuned on all
    assert t["stop_rate"] == {"base": pytest.approx(2 / 8), "tuned": 1.0}
    assert t["stop_rate_scored"] == {"base": pytest.approx(2 / 7), "tuned": 1.0}


def test_regressions_come_first_then_wins_then_unchanged_then_open(report):
    order = [r.question for r in regressions_first(report)]
    assert order == ["Name in: Ann came.",  # the regression
                     "Year in: Tom moved in 1999.", "Plural of box?", "Opposite of hot?",  # wins, in file order
                     "Capital of Peru?", "Capital of Chile?", "Plural of cat?",  # unchanged
                     "Tell me about tea."]  # open


def test_compare_json_keeps_answers_scores_and_finish_reasons(report):
    report.forgetting = Forgetting(kl=0.125, tuned_nll=1.5, base_nll=1.25, prompts=2, tokens=40)
    d = json.loads(json.dumps(report.to_dict()))
    row = d["rows"][1]
    assert row["answers"] == {"base": "Santiago de", "tuned": "Bogota"}
    assert row["finish_reason"] == {"base": "length", "tuned": "stop"}
    assert row["verdicts"] == {"base": "partial", "tuned": "wrong"} and row["category"] == "knowledge"
    assert row["scores"]["base"]["contains"] is True
    assert (d["totals"]["wins"], d["totals"]["regressions"], d["totals"]["unchanged"]) == (3, 1, 3)
    assert d["totals"]["base"]["stop_rate"] == pytest.approx(0.25) and d["totals"]["tuned"]["stop_rate"] == 1.0
    assert d["n_open"] == 1 and d["learned"]["per_category"]["rewrite"]["wins"] == 2
    assert d["forgetting"] == {"kl": 0.125, "tuned_nll": 1.5, "base_nll": 1.25, "prompts": 2, "tokens": 40}
    line = describe(learned_totals(report), report.forgetting)
    assert "learned +2 (3 wins, 1 regressions, 3 unchanged of 7)" in line and "KL 0.125 nats/token" in line
    assert "stopped at end of turn: base 29%, tuned 100% (with the open questions: base 25%, tuned 100%)" in line
