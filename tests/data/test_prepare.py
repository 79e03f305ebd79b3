"""prepare_split: overlong rows truncated or dropped, rows with nothing to learn counted, the cache, max_rows."""

from __future__ import annotations

import pytest

from mlxsft.data import prepare_split
from mlxsft.errors import DataError
from tests.data.conftest import chat, data_cfg, write_jsonl

SHORT = chat("Hi", "Hello.")
LONG = chat("Tell me a story. " * 40, "Once upon a time. " * 40)  # ~400 tokens of prompt, then the answer


def test_truncate_and_drop_are_counted(smol_tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [SHORT, LONG, SHORT])
    cut = prepare_split(data_cfg(data=str(path), max_seq_len=600), smol_tokenizer, "train")
    full_len = max(len(e.input_ids) for e in cut.examples)
    assert cut.stats["truncated"] == 0 and full_len > 300

    t = prepare_split(data_cfg(data=str(path), max_seq_len=300), smol_tokenizer, "train")
    assert (t.stats["rows"], t.stats["truncated"], t.stats["dropped_overlong"]) == (3, 1, 0)
    assert max(len(e.input_ids) for e in t.examples) == 300
    d = prepare_split(data_cfg(data=str(path), max_seq_len=300, overlong="drop"), smol_tokenizer, "train")
    assert (d.stats["rows"], d.stats["truncated"], d.stats["dropped_overlong"]) == (2, 0, 1)
    assert [e.row for e in d.examples] == [0, 2]


def test_rows_cut_before_their_answer_are_counted_and_left_out(smol_tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [SHORT, LONG])
    s = prepare_split(data_cfg(data=str(path), max_seq_len=100), smol_tokenizer, "train")
    assert (s.stats["rows"], s.stats["truncated"], s.stats["no_supervised_rows"]) == (1, 1, 1)
    assert s.stats["supervised_tokens"] == int(s.examples[0].loss_mask.sum()) > 0


def test_every_row_without_supervision_is_an_error(smol_tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [LONG, LONG])
    with pytest.raises(DataError, match="no row has a supervised token"):
        prepare_split(data_cfg(data=str(path), max_seq_len=64), smol_tokenizer, "train")
    with pytest.raises(DataError, match="every row is longer than max_seq_len=64"):
        prepare_split(data_cfg(data=str(path), max_seq_len=64, overlong="drop"), smol_tokenizer, "train")


def test_stats_and_template(smol_tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [SHORT, chat("a", "b", "c", "d")])
    s = prepare_split(data_cfg(data=str(path)), smol_tokenizer, "train")
    assert s.chat_template == smol_tokenizer.chat_template
    st = s.stats
    assert (st["rows_in"], st["rows"], st["assistant_turns"], st["multi_turn_rows"]) == (2, 2, 3, 1)
    assert st["total_tokens"] == sum(len(e.input_ids) for e in s.examples)
    assert st["supervised_tokens"] == sum(int(e.loss_mask.sum()) for e in s.examples)
    assert 0 < st["supervised_fraction"] < 1


def test_cache_hit_and_key(smol_tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [SHORT, chat("cache", "me", "c", "d")])
    cfg = data_cfg(data=str(path))
    first = prepare_split(cfg, smol_tokenizer, "train")
    again = prepare_split(cfg, smol_tokenizer, "train")
    assert not first.stats["cached"] and again.stats["cached"]
    assert [e.input_ids.tolist() for e in first.examples] == [e.input_ids.tolist() for e in again.examples]
    assert [e.loss_mask.tolist() for e in first.examples] == [e.loss_mask.tolist() for e in again.examples]
    assert [e.row for e in first.examples] == [e.row for e in again.examples]
    other = prepare_split(data_cfg(data=str(path), train_on="last"), smol_tokenizer, "train")
    assert not other.stats["cached"]  # train_on is part of the key
    write_jsonl(path, [SHORT, chat("cache", "me", "c", "e")])
    assert not prepare_split(cfg, smol_tokenizer, "train").stats["cached"]  # so is the data


def test_max_rows_caps_only_the_train_split(smol_tokenizer, tmp_path):
    write_jsonl(tmp_path / "d" / "train.jsonl", [SHORT] * 5)
    write_jsonl(tmp_path / "d" / "valid.jsonl", [SHORT] * 3)
    cfg = data_cfg(data=str(tmp_path / "d"), max_rows=2)
    assert prepare_split(cfg, smol_tokenizer, "train").stats["rows"] == 2
    assert prepare_split(cfg, smol_tokenizer, "valid").stats["rows"] == 3


def test_template_errors_name_the_row(gemma_tokenizer, tmp_path):
    # Gemma's template refuses two user turns in a row; the error points at the row, in one line.
    path = write_jsonl(tmp_path / "d.jsonl", [SHORT, {"messages": [
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}])
    with pytest.raises(DataError, match=rf"^{path}:2: messages: chat template failed: TemplateError: "
                                        "Conversation roles must alternate"):
        prepare_split(data_cfg(data=str(path)), gemma_tokenizer, "train")


def test_ten_thousand_rows_prepare_quickly(smol_tokenizer, tmp_path):
    """Not a timing test (see the report); just that a large file goes through in one piece."""
    rows = [chat(f"What is {i} + {i}?", f"{2 * i}") for i in range(2000)]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    s = prepare_split(data_cfg(data=str(path)), smol_tokenizer, "train")
    assert s.stats["rows"] == 2000 and s.stats["no_supervised_rows"] == 0
