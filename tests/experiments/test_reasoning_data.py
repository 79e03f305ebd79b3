"""The reasoning experiment's problem generator: golden problems from a seed, every answer and trace checked by
an independent solver, train and held-out disjoint, the trace through the data layer, trace stripping and the
scoring of a hand-made compare.json, and a generation limit every reference trace fits in."""

from __future__ import annotations

import json
import re

import pytest

from mlxsft.errors import RunError
from mlxsft.experiments.reasoning import score_answers
from mlxsft.experiments.reasoning_data import KINDS, Problem, ReasoningSpec, answer_budget, check_disjoint, \
    generate, strip_trace, trace_steps_right, training_row, write_questions, write_rows

UNIT = {"hours": ("minutes", 60), "minutes": ("seconds", 60), "days": ("hours", 24), "weeks": ("days", 7),
        "kilometers": ("meters", 1000), "meters": ("centimeters", 100), "centimeters": ("millimeters", 10),
        "kilograms": ("grams", 1000), "grams": ("milligrams", 1000)}


def solve(question: str) -> int:
    """The answer, worked out from the question's text alone (not from the generator's code)."""
    if m := re.fullmatch(r"What is \(?(\d+) ([-+*]) (\d+)\)? ([-+*]) (\d+)\?", question):
        return int(eval(question[len("What is "):-1]))  # the text is an arithmetic expression of small integers
    if m := (re.fullmatch(r"How many (\w+) are in (\d+) (\w+)\?", question)
             or re.fullmatch(r"Convert (\d+) (\w+) to (\w+)\.", question)):
        dst, n, src = (m[1], int(m[2]), m[3]) if question.startswith("How") else (m[3], int(m[1]), m[2])
        value, unit, hops = n, src, 0
        while unit != dst:
            unit, factor = UNIT[unit]
            value, hops = value * factor, hops + 1
        assert hops == 2, question  # a conversion through exactly one intermediate unit
        return value
    if m := re.fullmatch(r"\w+ has (\d+) boxes with (\d+) (\w+) in each and gives away (\d+) \3\. How many \3 "
                         r"does \w+ have left\?", question):
        return int(m[1]) * int(m[2]) - int(m[4])
    if m := re.fullmatch(r"\w+ buys (\d+) notebooks at (\d+) dollars each and pays with a (\d+) dollar bill\. How "
                         r"many dollars of change does \w+ get\?", question):
        return int(m[3]) - int(m[1]) * int(m[2])
    if m := re.fullmatch(r"A train travels at (\d+) kilometers per hour for (\d+) hours, then (\d+) more "
                         r"kilometers\. How many kilometers does it travel in all\?", question):
        return int(m[1]) * int(m[2]) + int(m[3])
    raise AssertionError(f"no solver for {question!r}")


def test_golden_problems_from_seed_0():
    problems = generate(ReasoningSpec(seed=0, train=600, held_out=48))
    assert problems.held_out[:3] == [
        Problem("arithmetic", "What is 14 * 15 + 2?", "14 * 15 = 210. 210 + 2 = 212.", "212"),
        Problem("units", "How many milligrams are in 17 kilograms?",
                "17 kilograms = 17 * 1000 = 17000 grams. 17000 grams = 17000 * 1000 = 17000000 milligrams.",
                "17000000"),
        Problem("word", "Tom buys 7 notebooks at 5 dollars each and pays with a 50 dollar bill. How many dollars of "
                        "change does Tom get?", "7 * 5 = 35 dollars. 50 - 35 = 15.", "15")]
    assert problems.train[:2] == [
        Problem("arithmetic", "What is 4 * 12 + 2?", "4 * 12 = 48. 48 + 2 = 50.", "50"),
        Problem("units", "Convert 9 days to minutes.",
                "9 days = 9 * 24 = 216 hours. 216 hours = 216 * 60 = 12960 minutes.", "12960")]
    assert [sum(p.kind == k for p in problems.train) for k in KINDS] == [200, 200, 200]
    assert [sum(p.kind == k for p in problems.held_out) for k in KINDS] == [16, 16, 16]
    # the same seed draws the same problems, another seed others
    assert generate(ReasoningSpec(seed=0, train=600, held_out=48)) == problems
    assert generate(ReasoningSpec(seed=1, train=600, held_out=48)).held_out[:3] != problems.held_out[:3]


@pytest.mark.parametrize("seed", [0, 7])
def test_every_answer_and_trace_is_right_and_the_splits_are_disjoint(seed):
    problems = generate(ReasoningSpec(seed=seed, train=600, held_out=48))
    for p in problems.train + problems.held_out:
        assert int(p.answer) == solve(p.question) and int(p.answer) >= 0, p
        assert trace_steps_right(p.trace) and p.trace.count("=") >= 2, p  # two worked steps, each right
        assert re.match(rf"{p.answer}\b", p.trace.split(" = ")[-1]), p  # the last step gives the answer
        assert p.question.isascii() and p.trace.isascii()
    train_q, held_q = {p.question for p in problems.train}, {p.question for p in problems.held_out}
    assert len(train_q) == 600 and len(held_q) == 48 and not train_q & held_q


def test_overlapping_splits_and_too_many_problems_are_refused():
    p = Problem("arithmetic", "What is 2 * 3 + 1?", "2 * 3 = 6. 6 + 1 = 7.", "7")
    with pytest.raises(RunError, match="1 held-out problems are also training problems"):
        check_disjoint([p], [p])
    with pytest.raises(RunError, match="ran out of distinct units problems"):
        generate(ReasoningSpec(train=3000, held_out=3))  # 6 chains x 29 amounts x 2 phrasings: 348 questions


def test_the_trace_goes_through_the_data_layer_as_reasoning(tmp_path, smol_tokenizer):
    from mlxsft.data.formats import to_conversation
    from mlxsft.data.records import RawRow
    from mlxsft.data.templates import TemplateRenderer

    p = Problem("arithmetic", "What is 2 * 3 + 1?", "2 * 3 = 6. 6 + 1 = 7.", "7")
    assert training_row(p, with_trace=False)["messages"][1] == {"role": "assistant", "content": "7"}
    path = write_rows([p], tmp_path / "trace.jsonl", with_trace=True)
    conv, problems = to_conversation(RawRow(json.loads(path.read_text()), str(path), 1))
    assert not problems and conv is not None
    assistant = conv.messages[-1]
    assert assistant["reasoning"] == p.trace and assistant["content"] == "7"
    renderer = TemplateRenderer(smol_tokenizer, smol_tokenizer.chat_template)
    assert renderer.field is None  # no reasoning field in this template: the trace goes inline before the answer
    text = renderer.render(renderer.messages([{"role": "user", "content": p.question}, assistant]))
    assert f"<think>\n{p.trace}\n</think>\n\n7" in text
    assert strip_trace(text[text.index("<think>"):].split("<|im_end|>")[0]) == ("7", "trace")


def test_strip_trace():
    assert strip_trace("<think>\n2 * 3 = 6. 6 + 1 = 7.\n</think>\n\n7") == ("7", "trace")
    assert strip_trace("  7 ") == ("7", "no_trace")
    assert strip_trace("<think>\n2 * 3 = 6. 6 + 1 = 7") == (None, "cut_off")  # ended inside the trace
    assert strip_trace("<think>a</think> 5 <think>b</think> 7") == ("7", "trace")  # what follows the last one


def test_scoring_strips_the_trace_and_counts_a_cut_off_answer_wrong():
    rows = [("What is 2 * 3 + 1?", "7", "arithmetic", "<think>\n2 * 3 = 6. 6 + 1 = 7.\n</think>\n\n7", "7"),
            # cut off inside the trace: wrong, though its last number is the reference
            ("What is 3 * 12?", "36", "arithmetic", "<think>\n3 * 12 = 36", "36"),
            # a complete trace with a wrong step and a wrong answer
            ("Convert 2 hours to seconds.", "7200", "units", "<think>\n2 * 60 = 100.\n</think>\n\n6000", "12"),
            # the number inside the trace is not the answer: only what follows </think> is scored
            ("What is 5 + 5?", "10", "word", "<think>\n5 + 5 = 10.\n</think>\n\neleven", "ten"),
            ("Open question", None, None, "<think>\nx", "y")]
    compare = {"rows": [{"question": q, "reference": ref, "category": kind, "answers": {"tuned": t, "base": b}}
                        for q, ref, kind, t, b in rows]}
    scored = score_answers(compare)
    assert scored["tuned"] == {"questions": 4, "right": 1, "cut_off": 1, "traced": 3, "steps_right": 2,
                               "by_kind": {"arithmetic": 1, "units": 0, "word": 0}}
    assert scored["base"]["right"] == 2 and scored["base"]["cut_off"] == 0  # "7" and "36", no traces


def test_the_answer_budget_fits_every_reference_trace(smol_tokenizer, tmp_path):
    problems = generate(ReasoningSpec(seed=0, train=30, held_out=48)).held_out
    budget = answer_budget(problems)
    longest = max(len(smol_tokenizer.encode(f"<think>\n{p.trace}\n</think>\n\n{p.answer}",
                                            add_special_tokens=False)) for p in problems)
    assert longest < budget <= 200
    # in the student's own tokens: the longest trace plus the margin, well under the bytes' bound
    in_tokens = answer_budget(problems, lambda t: len(smol_tokenizer.encode(t, add_special_tokens=False)))
    assert in_tokens == longest + 16 < budget
    rows = [json.loads(line) for line in write_questions(problems, tmp_path / "q.jsonl").read_text().splitlines()]
    assert rows[0] == {"question": problems[0].question, "reference": problems[0].answer, "category": "arithmetic"}
