"""Prompt rows: every accepted shape, the ids, and one clear error per bad row."""

from __future__ import annotations

import pytest

from mlxsft.curate.prompts import check_prompts, prompt_id, read_prompts
from mlxsft.errors import DataError
from tests.curate.conftest import write_jsonl


def test_every_prompt_shape_becomes_messages_ending_in_a_user_turn(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "A?"},
        {"question": "B?", "answer": 42},
        {"instruction": "Translate", "input": "chat", "id": 7},
        {"messages": [{"role": "user", "content": "C?"}, {"role": "assistant", "content": "c"}]},
        {"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "D?"}],
         "reference": "d"},
        {"prompt": [{"role": "user", "content": "E?"}], "system": "Row system."},
    ])
    rows = list(read_prompts(path, system="Default system."))
    assert [r.messages[-1] for r in rows] == [{"role": "user", "content": c} for c in
                                              ("A?", "B?", "Translate\n\nchat", "C?", "D?", "E?")]
    assert [r.reference for r in rows] == [None, "42", None, "c", "d", None]
    # --system fills in rows without one; a row's own system prompt wins
    assert [r.messages[0]["content"] for r in rows if r.messages[0]["role"] == "system"] == \
        ["Default system."] * 4 + ["Be terse.", "Row system."]
    assert rows[2].id == "7"
    assert rows[0].id == prompt_id(rows[0].messages) and len(rows[0].id) == 16
    assert [r.line for r in rows] == [1, 2, 3, 4, 5, 6] and rows[1].source == f"{path}:2"


@pytest.mark.parametrize("row, message", [
    ({"text": "no prompt"}, "p.jsonl:2: row: expected a 'prompt', 'question', 'instruction' or 'messages' field"),
    ({"prompt": 3}, "p.jsonl:2: prompt: expected a string"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "p.jsonl:2: messages[0].role: expected one of"),
    ({"messages": [{"role": "system", "content": "x"}]}, "p.jsonl:2: messages: the prompt must end with a user turn"),
    ({"question": "  "}, "p.jsonl:2: question: empty prompt"),
    ({"question": "q", "reference": ["a"]}, "p.jsonl:2: reference: expected a string or a number"),
])
def test_a_bad_row_is_one_error_naming_file_line_and_field(tmp_path, row, message):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "fine"}, row])
    with pytest.raises(DataError) as e:
        check_prompts(path)
    assert str(e.value).startswith(str(tmp_path / message))


def test_check_prompts_counts_rows_and_requires_references_when_asked(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "a", "reference": "1"}, {"question": "b"}])
    assert check_prompts(path) == 2
    with pytest.raises(DataError, match=r"p.jsonl:2: reference: missing: the reference scorer"):
        check_prompts(path, need_reference=True)
    (tmp_path / "bad.jsonl").write_text('{"question": "a"}\n{oops\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: invalid JSON"):
        check_prompts(tmp_path / "bad.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no prompts"):
        check_prompts(tmp_path / "empty.jsonl")
