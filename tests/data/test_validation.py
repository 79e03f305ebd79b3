"""Validation: each problem as ``file:line: field: what is wrong``, the same checks in validate and in training."""

from __future__ import annotations

import json

import pytest

from mlxsft.data import load_conversations, validate_path, validate_source
from mlxsft.errors import DataError
from tests.data.conftest import chat, data_cfg


def user(c):
    return {"role": "user", "content": c}


def bot(c):
    return {"role": "assistant", "content": c}


BAD_LINES = [
    json.dumps(chat("ok", "fine")),                                                  # 1: good
    '{"messages": [{"role": "user", "content": "hi"}',                               # 2: bad JSON
    json.dumps({"messages": [{"content": "hi"}, bot("x")]}),                         # 3: role missing
    json.dumps({"messages": [{"role": "bot", "content": "hi"}, bot("x")]}),          # 4: unknown role
    json.dumps({"messages": [user(""), bot("x")]}),                                  # 5: empty content
    json.dumps({"messages": [user(5), bot("x")]}),                                   # 6: non-string content
    json.dumps({"messages": [{"role": "system", "content": "s"}, bot("x"), user("q")]}),  # 7: no user first
    None,                                                                            # 8: bad UTF-8
    json.dumps({"question": "q"}),                                                   # 9: unknown format
    json.dumps([1, 2]),                                                              # 10: not an object
    json.dumps({"messages": [user("q")]}),                                           # 11: nothing to learn
    json.dumps({"messages": "hello"}),                                               # 12: not a list
    json.dumps({"messages": [user("q"), {"role": "assistant"}]}),                    # 13: content missing
    "",                                                                              # 14: blank, skipped
    json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]}),  # 15
    json.dumps({"instruction": "Do it", "output": ""}),                              # 16: alpaca, empty output
    json.dumps({"prompt": "q"}),                                                     # 17: completion missing
]

EXPECTED = [
    "2: row: invalid JSON (Expecting ',' delimiter at column 48)",
    "3: messages[0].role: missing",
    "4: messages[0].role: unknown role 'bot' (expected system, user, assistant, tool)",
    "5: messages[0].content: empty",
    "6: messages[0].content: expected a string, got a number",
    "7: messages[1].role: assistant turn before any user turn",
    "8: row: invalid UTF-8 (byte 0xff at column 47)",
    "9: row: unknown format: expected a 'messages', 'prompt'/'completion', 'text', 'conversations' or "
    "'instruction'/'output' field (found 'question')",
    "10: row: expected an object, got a list",
    "11: messages: no assistant turn to learn from",
    "12: messages: expected a list of messages, got a string",
    "13: messages[1].content: missing",
    "15: conversations[1].from: unknown role 'robot' (expected human, user, gpt, assistant, model, chatgpt, bard, "
    "bing, function_call, system, tool, observation, function_response, ipython)",
    "16: output: empty",
    "17: completion: missing",
]


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [l.encode() if l is not None else b'{"messages": [{"role": "user", "content": "caf\xff"}]}'
             for l in BAD_LINES]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_every_problem_with_its_line(bad_file):
    problems = [str(p) for p in validate_path(str(bad_file), data_cfg())]
    assert problems == [f"{bad_file}:{e}" for e in EXPECTED]


def test_training_refuses_the_first_bad_row_and_counts_the_rest(bad_file):
    with pytest.raises(DataError) as err:
        load_conversations(str(bad_file), "train", data_cfg())
    msg = str(err.value)
    assert msg.startswith(f"{bad_file}:2: row: invalid JSON")
    assert f"{len(EXPECTED) - 1} more problems; `mlxsft data validate {bad_file}` lists them all" in msg
    assert "\n" not in msg


def test_report_counts_rows_and_files(bad_file, tmp_path):
    report = validate_source(str(bad_file), data_cfg())
    assert (report.rows, report.bad_rows, report.files) == (16, 15, [str(bad_file)])
    good = tmp_path / "good"
    good.mkdir()
    (good / "train.jsonl").write_text(json.dumps(chat("a", "b")) + "\n")
    (good / "valid.jsonl").write_text("")
    report = validate_source(str(good), data_cfg())
    assert [str(p) for p in report.problems] == [f"{good / 'valid.jsonl'}: no rows"]


def test_bad_utf8_and_bad_json_in_json_and_csv_files(tmp_path):
    j = tmp_path / "d.json"
    j.write_bytes(b'[\n  {"messages": []},\n  {"text": "caf\xff"}\n]')
    assert [str(p) for p in validate_path(str(j), data_cfg())] == [f"{j}:3: row: invalid UTF-8 (byte 0xff at column 16)"]
    j.write_text('[\n  {"text": "a"},\n  {"text": "b"\n]')
    assert [str(p) for p in validate_path(str(j), data_cfg())] == [f"{j}:4: row: invalid JSON (Expecting ',' delimiter)"]
    c = tmp_path / "d.csv"
    c.write_text('prompt,completion\nq1,a1\nq2,\n')
    assert [str(p) for p in validate_path(str(c), data_cfg())] == [f"{c}:3: completion: empty"]


def test_missing_path_and_explicit_format_mismatch(tmp_path):
    with pytest.raises(DataError, match="file or folder not found"):
        validate_path(str(tmp_path / "nope.jsonl"), data_cfg())
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(chat("q", "a")) + "\n")
    assert [str(p) for p in validate_path(str(path), data_cfg(format="alpaca"))] == [
        f"{path}:1: instruction: missing", f"{path}:1: output: missing"]


def test_reasoning_and_tools_checks(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [
        {"messages": [user("q"), {"role": "assistant", "content": "a", "reasoning": 3}]},
        {"messages": [user("q"), bot("a")], "tools": "not tools"},
        {"messages": [user("q"), {"role": "assistant", "content": "", "reasoning": "only thinking"}]},
        {"messages": [user("q"), {"role": "assistant", "content": None, "tool_calls": [{"name": "f"}]},
                      {"role": "tool", "content": "42"}, bot("It is 42.")]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [str(p) for p in validate_path(str(path), data_cfg())] == [
        f"{path}:1: messages[1].reasoning: expected a string, got a number",
        f"{path}:2: tools: expected a list of tool schemas (objects), got a string",
    ]
