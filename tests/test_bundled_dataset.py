"""The bundled dataset: schema, mix, split hygiene, correct references, and a reproducible generator.

Run: ``pytest tests/test_bundled_dataset.py -q``. The answer checks below recompute references on their own
(regexes over the question text, ``json`` and ``datetime``), never through the generator's code.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mlxsft.data.bundled as bundled
from mlxsft.data.bundled.handwritten import CONVERSATIONS, GENERAL_PROMPTS, OPEN_QUESTIONS

FOLDER = Path(bundled.__file__).parent
SPLITS = ("train", "valid", "eval")
CATEGORIES = {"extract", "classify", "rewrite", "format", "knowledge"}


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
    assert 250 <= len(train) <= 400
    assert 15 <= len(valid) <= 50
    assert sum("reference" in r for r in evaluation) >= 40  # the floor for held-out verifiable questions
    assert len(load("general")) == len(GENERAL_PROMPTS) >= 12


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
    assert sum(map(is_multi_turn, train)) / len(train) >= 0.1
    assert 5 <= sum(r["messages"][0]["role"] == "system" for r in train) <= 40
    verifiable = sum(not is_handwritten(r) for r in train) / len(train)
    assert 0.75 <= verifiable <= 0.9
    evaluation = load("eval")
    assert {r["category"] for r in evaluation} == CATEGORIES | {"open"}
    per_category = {c: sum(r["category"] == c for r in evaluation) for c in CATEGORIES}
    assert min(per_category.values()) >= 6, per_category


def test_rows_are_short():
    """The demo pays per token: verifiable answers are a few words, hand-written ones a sentence or two."""
    for row in load("train") + load("valid"):
        for m in row["messages"]:
            limit = 60 if not is_handwritten(row) and m["role"] == "assistant" else 400
            assert len(m["content"]) <= limit, m["content"]


# ------------------------------------------------------------------------------------------- hygiene


def test_no_prompt_is_shared_across_or_within_splits():
    seen: dict[str, str] = {}
    for split in SPLITS:
        for row in load(split):
            prompt = user_turns(row)[0]
            assert prompt not in seen, f"{prompt!r} in {seen.get(prompt)} and {split}"
            seen[prompt] = split
    # An eval question is not even a later turn of a training conversation, nor a general prompt.
    chat_turns = {u for s in ("train", "valid") for r in load(s) for u in user_turns(r)}
    asked = {r["question"] for r in load("eval")} | {r["question"] for r in load("general")}
    assert not chat_turns & asked


def _subject(text: str) -> str:
    """The instance a question is about, whatever its wording: the text after the instruction."""
    for sep in ("\n\n", ": ", "? "):
        if sep in text:
            return text.split(sep, 1)[1].strip()
    return text


def test_eval_is_not_a_rephrased_train_instance():
    """The same sentence (or word) in other words would leak the answer."""
    rows = [r for s in ("train", "valid") for r in load(s) if not is_handwritten(r)]
    train = {(_subject(u), a) for r in rows for u, a in pairs(r)}
    leaked = [r["question"] for r in load("eval") if "reference" in r and (_subject(r["question"]), r["reference"]) in train]
    assert not leaked


def test_open_and_general_prompts_are_not_train_prompts():
    prompts = {user_turns({"messages": c})[0] for c in CONVERSATIONS}
    assert len(prompts) == len(CONVERSATIONS)
    assert not prompts & set(OPEN_QUESTIONS) and not prompts & set(GENERAL_PROMPTS)


# ------------------------------------------------------------------------------------------- answers

_YEAR = re.compile(r"\b(19\d\d|20\d\d)\b")
_EMAIL = re.compile(r"[\w.]+@[\w.]+\w")
_UPPER = re.compile(r"^(?:Write in capital letters: |Convert to uppercase: )(.+)$|^Rewrite '(.+)' in all caps\.$")
_DATE = re.compile(r"(January|February|March|April|May|June|July|August|September|October|November|December) "
                   r"(\d+), (\d{4})")
_REPLACE = re.compile(r"^(?:Replace '(\w+)' with '(\w+)' in this sentence: |Change the word (\w+) to (\w+): )(.+)$"
                      r"|^Rewrite the sentence with (\w+) instead of (\w+)\.\n\n(.+)$")
_ADD = re.compile(r"^(?:What is (\d+) \+ (\d+)\?|Add (\d+) and (\d+)\.|(\d+) plus (\d+) equals\?)$")


def independent_reference(question: str) -> str | None:
    """The answer to a question of a checkable kind, worked out from the question text alone."""
    if "year" in question and (m := _YEAR.findall(question)):
        return m[-1]
    if "email" in question and (m := _EMAIL.search(question)):
        return m.group(0)
    if m := _UPPER.match(question):
        return (m.group(1) or m.group(2)).upper()
    if "YYYY-MM-DD" in question and (m := _DATE.search(question)):
        return dt.datetime.strptime(" ".join(m.groups()), "%B %d %Y").date().isoformat()
    if m := _REPLACE.match(question):
        g = m.groups()
        a, b, sentence = (g[0], g[1], g[4]) if g[0] else (g[2], g[3], g[4]) if g[2] else (g[6], g[5], g[7])
        return re.sub(rf"\b{a}\b", b, sentence)
    if m := _ADD.match(question):
        x, y = (int(v) for v in m.groups() if v)
        return str(x + y)
    if "JSON" in question:
        name, city = re.search(r"(\w+) (?:lives in|is from|just moved to|works in) ([\w ]+)\.$", question).groups()
        return json.dumps({"name": name, "city": city})
    if "review" in question.lower():
        return None  # labels are checked in test_labels_follow_the_text
    return None


def test_references_match_an_independent_computation():
    checked = 0
    questions = [(r["question"], r["reference"]) for r in load("eval") if "reference" in r]
    questions += [p for s in ("train", "valid") for r in load(s) if not is_handwritten(r) for p in pairs(r)]
    for question, answer in questions:
        if (expected := independent_reference(question)) is not None:
            assert answer == expected, question
            checked += 1
    assert checked >= 150


def test_labels_follow_the_text():
    good = re.compile(r"love|great|best|excellent|highly recommended|would buy it again", re.I)
    checked = 0
    for s in ("train", "valid", "eval"):
        for row in load(s):
            for q, a in ([(row["question"], row.get("reference"))] if "question" in row else pairs(row)):
                if "review" in q.lower() and a in ("positive", "negative"):
                    assert (a == "positive") == bool(good.search(q)), q
                    checked += 1
                if "question or a statement" in q or q.startswith("Question or statement"):
                    sentence = _subject(q)
                    assert a == ("question" if sentence.endswith("?") else "statement"), q
                    checked += 1
    assert checked >= 30


def test_verifiable_answers_are_only_the_answer():
    for split in ("train", "valid"):
        for row in load(split):
            if not is_handwritten(row):
                for _, answer in pairs(row):
                    assert "\n" not in answer and len(answer.split()) <= 8, answer


# ------------------------------------------------------------------------------------------- generator


def test_generator_rewrites_the_committed_files_byte_for_byte(tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # no dependence on set or dict hashing order
    subprocess.run([sys.executable, "-m", "mlxsft.data.bundled.make_dataset", "--out", str(tmp_path)],
                   check=True, capture_output=True, env=env, cwd=Path(__file__).parents[1])
    for split in (*SPLITS, "general"):
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (FOLDER / f"{split}.jsonl").read_bytes(), split
