"""The bundled dataset: schema, mix, split hygiene, correct references, and a reproducible generator.

Run: ``pytest tests/test_bundled_dataset.py -q``. The answer checks below recompute references on their own
(regexes over the question text, ``ast`` and ``datetime``), never through the generator's code.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import operator
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mlxsft.data.bundled as bundled
from mlxsft.data.bundled.handwritten import CONVERSATIONS, OPEN_QUESTIONS

FOLDER = Path(bundled.__file__).parent
SPLITS = ("train", "valid", "eval")
CATEGORIES = {"arithmetic", "conversion", "string", "list", "date"}


def load(split: str) -> list[dict]:
    with open(FOLDER / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def user_turns(row: dict) -> list[str]:
    if "question" in row:
        return [row["question"]]
    return [m["content"] for m in row["messages"] if m["role"] == "user"]


def pairs(row: dict) -> list[tuple[str, str]]:
    """(user, assistant) exchanges of a chat row."""
    turns = [m for m in row["messages"] if m["role"] != "system"]
    return [(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns), 2)]


def is_multi_turn(row: dict) -> bool:
    return len(user_turns(row)) > 1


_HANDWRITTEN = {json.dumps(c) for c in CONVERSATIONS}


def is_handwritten(row: dict) -> bool:
    return json.dumps(row["messages"]) in _HANDWRITTEN


# ------------------------------------------------------------------------------------------- shape


def test_row_counts():
    train, valid, evaluation = (load(s) for s in SPLITS)
    assert len(train) >= 300
    assert 35 <= len(valid) <= 50
    assert 50 <= len(evaluation) <= 70


@pytest.mark.parametrize("split", ["train", "valid"])
def test_chat_rows_have_the_messages_schema(split):
    for i, row in enumerate(load(split)):
        assert set(row) == {"messages"}, i
        messages = row["messages"]
        roles = [m["role"] for m in messages]
        for m in messages:
            assert set(m) == {"role", "content"}, i
            assert isinstance(m["content"], str) and m["content"].strip() == m["content"] != "", i
        if roles[0] == "system":
            roles = roles[1:]
        assert "system" not in roles, i
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles, f"{split}:{i}: roles {roles}"


def test_eval_rows_have_the_question_schema():
    for i, row in enumerate(load("eval")):
        assert "question" in row and set(row) <= {"question", "reference", "category"}, i
        assert row["category"] in CATEGORIES | {"open"}, i
        # Verifiable questions carry a reference; open-ended ones don't.
        assert ("reference" in row) == (row["category"] != "open"), i
        if "reference" in row:
            assert row["reference"].strip() == row["reference"] != "", i


def test_mix_multi_turn_system_and_verifiable_share():
    train = load("train")
    assert sum(map(is_multi_turn, train)) / len(train) >= 0.15
    assert sum(map(is_multi_turn, load("valid"))) / len(load("valid")) >= 0.15
    assert 5 <= sum(r["messages"][0]["role"] == "system" for r in train) <= 40
    verifiable = sum(not is_handwritten(r) for r in train) / len(train)
    assert 0.55 <= verifiable <= 0.65
    assert len(CONVERSATIONS) >= 100

    evaluation = load("eval")
    with_reference = sum("reference" in r for r in evaluation) / len(evaluation)
    assert 0.6 <= with_reference <= 0.75
    assert {r["category"] for r in evaluation} == CATEGORIES | {"open"}


def test_rows_are_short():
    train = load("train")
    assert sum(len(m["content"]) for r in train for m in r["messages"]) / 4 < 40_000  # ~tokens
    for row in train + load("valid"):
        for m in row["messages"]:
            assert len(m["content"]) < (60 if not is_handwritten(row) and m["role"] == "assistant" else 800)


# ------------------------------------------------------------------------------------------- hygiene


def test_no_prompt_is_shared_across_or_within_splits():
    seen: dict[str, str] = {}
    for split in SPLITS:
        for row in load(split):
            prompt = user_turns(row)[0]
            assert prompt not in seen, f"{prompt!r} in {seen.get(prompt)} and {split}"
            seen[prompt] = split
    # An eval question is not even a follow-up turn of a training conversation.
    chat_turns = {u for s in ("train", "valid") for r in load(s) for u in user_turns(r)}
    assert not chat_turns & {r["question"] for r in load("eval")}


def test_eval_is_not_a_rephrased_train_instance():
    """Same operands in other words would leak the answer: compare the numbers and quoted strings."""

    def operands(text: str) -> tuple:
        return tuple(re.findall(r"\d[\d-]*|'[a-z]+'", text))

    rows = [r for s in ("train", "valid") for r in load(s) if not is_handwritten(r)]
    train = {(operands(u), a) for r in rows for u, a in pairs(r)}
    for row in load("eval"):
        if "reference" in row and len(operands(row["question"])) > 1:
            assert (operands(row["question"]), row["reference"]) not in train, row["question"]


def test_open_questions_are_not_train_prompts():
    prompts = {user_turns({"messages": c})[0] for c in CONVERSATIONS}
    assert len(prompts) == len(CONVERSATIONS)
    assert not prompts & set(OPEN_QUESTIONS)


# ------------------------------------------------------------------------------------------- answers

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _calc(expression: str) -> int:
    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        raise ValueError(expression)

    return walk(ast.parse(expression, mode="eval").body)


_EXPR = re.compile(r"^(?:Calculate |What is |Compute |Work out |Evaluate )?(\d+(?: ?[-+*] ?\d+)+)(?: = \?|\?|\.)?$")
_TIMES = re.compile(r"^(?:What is (\d+) times (\d+)\?|Multiply (\d+) by (\d+)\."
                    r"|What is the product of (\d+) and (\d+)\?)$")
_CHAIN = re.compile(r"^Now (add|subtract) (\d+) (?:to|from) that\.$")


def arithmetic(question: str) -> int | None:
    """The value of an arithmetic question, or None if it is not one."""
    if m := _EXPR.match(question):
        return _calc(m.group(1))
    if m := _TIMES.match(question):
        a, b = (int(x) for x in m.groups() if x)
        return a * b
    return None


def test_every_arithmetic_reference_is_correct():
    checked = 0
    for row in load("eval"):
        value = arithmetic(row["question"])
        assert (value is not None) == (row["category"] == "arithmetic"), row["question"]
        if value is not None:
            assert row["reference"] == str(value), row
            checked += 1
    for split in ("train", "valid"):
        for row in load(split):
            previous = None
            for user, answer in pairs(row):
                if (value := arithmetic(user)) is not None:
                    assert answer == str(value), (split, user, answer)
                    checked += 1
                elif (m := _CHAIN.match(user)) and previous is not None:
                    n = int(m.group(2))
                    assert int(answer) == previous + (n if m.group(1) == "add" else -n), (split, row)
                    checked += 1
                previous = int(answer) if answer.isdigit() else None
    assert checked >= 60


_WEEKDAY = re.compile(r"(?:day of the week|weekday) (?:is|was|does) (\d{4}-\d\d-\d\d)")
_ADD_DAYS = re.compile(r"(\d+) days? (?:after|to) (\d{4}-\d\d-\d\d)|Add (\d+) days? to (\d{4}-\d\d-\d\d)")
_REVERSE = re.compile(r"^(?:Reverse the string|Spell|What is|Write the letters of) '([a-z]+)'"
                      r"(?: backwards| written backwards| in reverse order)?[.?]$")
_SORT = re.compile(r"^(?:Sort these numbers ascending: |Put these numbers in increasing order: )([\d, ]+)$")
_LEAP = re.compile(r"^Is (\d{4}) a leap year\?")


def other_reference(question: str) -> str | None:
    """Independent answers for a few non-arithmetic task types (dates, strings, lists)."""
    if m := _WEEKDAY.search(question):
        return dt.date.fromisoformat(m.group(1)).strftime("%A")
    if m := _ADD_DAYS.search(question):
        n, day = (x for x in m.groups() if x)
        return (dt.date.fromisoformat(day) + dt.timedelta(days=int(n))).isoformat()
    if m := _REVERSE.match(question):
        return "".join(reversed(m.group(1)))
    if m := _SORT.match(question):
        return ", ".join(map(str, sorted(int(x) for x in m.group(1).split(", "))))
    if m := _LEAP.match(question):
        y = int(m.group(1))
        return "Yes" if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else "No"
    return None


def test_date_string_and_list_references_are_correct():
    checked = 0
    questions = [(r["question"], r["reference"]) for r in load("eval") if "reference" in r]
    questions += [p for s in ("train", "valid") for r in load(s) if not is_handwritten(r) for p in pairs(r)[:1]]
    for question, answer in questions:
        if (expected := other_reference(question)) is not None:
            assert answer == expected, question
            checked += 1
    assert checked >= 40


def test_verifiable_answers_are_only_the_answer():
    for split in ("train", "valid"):
        for row in load(split):
            if not is_handwritten(row):
                for _, answer in pairs(row):
                    assert "\n" not in answer and not answer.endswith("."), answer
                    assert len(answer.split()) <= 6, answer


# ------------------------------------------------------------------------------------------- generator


def test_generator_rewrites_the_committed_files_byte_for_byte(tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # no dependence on set or dict hashing order
    subprocess.run([sys.executable, "-m", "mlxsft.data.bundled.make_dataset", "--out", str(tmp_path)],
                   check=True, capture_output=True, env=env, cwd=Path(__file__).parents[1])
    for split in SPLITS:
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (FOLDER / f"{split}.jsonl").read_bytes(), split
