"""``mlxsft data validate/show/stats/inspect``: in-process for output, as a subprocess for exit codes and errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlxsft.cli.data import data
from mlxsft.data import prepare_split
from tests.data.conftest import chat, data_cfg, write_jsonl
from tests.helpers import run_cli


@pytest.fixture
def good(tmp_path):
    return write_jsonl(tmp_path / "good.jsonl", [chat("What is 2+2?", "4"), chat("Hi", "Hello!", "Bye", "Bye!",
                                                                                 system="Be brief.")])


def test_validate_lists_problems_and_exits_1(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(chat("q", "a")) + "\n" + '{"messages": [{"role": "bot", "content": "x"}]}\n{"oops"\n')
    r = run_cli("data", "validate", str(bad))
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == [
        f"{bad}:2: messages[0].role: unknown role 'bot' (expected system, user, assistant, tool)",
        f"{bad}:3: row: invalid JSON (Expecting ':' delimiter at column 8)",
    ]
    assert "2 problems in 2 of 3 rows (1 file)" in lines[2]


def test_bad_input_is_one_line_on_stderr(tmp_path, good):
    r = run_cli("data", "show", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == f"error: {tmp_path / 'missing.jsonl'}: file or folder not found\n"
    r = run_cli("data", "show", str(good), "--format", "alpaca")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"error: {good}:1: instruction: missing (3 more problems; "
                        f"`mlxsft data validate {good}` lists them all)\n")


def test_inspect_row_out_of_range(good, smol_tokenizer_dir):
    from mlxsft.errors import DataError

    result = CliRunner().invoke(data, ["inspect", str(good), "--model", str(smol_tokenizer_dir), "--row", "7"])
    assert isinstance(result.exception, DataError)
    assert str(result.exception) == "--row 7 is out of range: split 'train' has 2 rows (0..1)"


def test_validate_clean_and_bundled(good):
    result = CliRunner().invoke(data, ["validate", str(good)])
    assert result.exit_code == 0 and "2 rows (1 file): no problems" in result.output
    result = CliRunner().invoke(data, ["validate"])
    assert result.exit_code == 0 and "no problems" in result.output


def test_show_puts_the_prompt_beside_the_response(good):
    result = CliRunner().invoke(data, ["show", str(good), "-n", "5"], terminal_width=160)
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "user" in line and "assistant" in line)
    first = next(line for line in result.output.splitlines() if "What is 2+2?" in line)
    assert first.index("What is 2+2?") < first.index("4 ") and header.index("user") < header.index("assistant")
    assert "system: Be brief." in result.output and "2 of 2 rows" in result.output


def test_stats(good, smol_tokenizer_dir):
    result = CliRunner().invoke(data, ["stats", str(good), "--model", str(smol_tokenizer_dir)], terminal_width=160)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "2 used of 2" in out and "3 (1 multi-turn rows)" in out and "token-length histogram" in out
    assert "supervised" in out and "padding (batch 8)" in out


def test_inspect_json_is_exactly_what_training_uses(good, smol_tokenizer, smol_tokenizer_dir):
    result = CliRunner().invoke(data, ["inspect", str(good), "--model", str(smol_tokenizer_dir), "--json",
                                       "--max-seq-len", "64"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    split = prepare_split(data_cfg(data=str(good), max_seq_len=64), smol_tokenizer, "train")
    assert rows == [{"input_ids": e.input_ids.tolist(), "loss_mask": e.loss_mask.tolist()} for e in split.examples]
    one = CliRunner().invoke(data, ["inspect", str(good), "--model", str(smol_tokenizer_dir), "--json", "--row", "1",
                                    "--max-seq-len", "64"])
    assert [json.loads(line) for line in one.output.splitlines()] == rows[1:]


def test_inspect_highlights_supervised_tokens(good, smol_tokenizer, smol_tokenizer_dir):
    from tests.data.helpers import encode

    result = CliRunner().invoke(data, ["inspect", str(good), "--model", str(smol_tokenizer_dir), "--row", "1",
                                       "--train-on", "last"], terminal_width=160)
    assert result.exit_code == 0, result.output
    ids, mask = encode(smol_tokenizer, json.loads(good.read_text().splitlines()[1]), train_on="last")
    assert f"row 1 of 2 ({good}:2): {len(ids)} tokens, {int(mask.sum())} supervised" in result.output
    assert "Bye!<|im_end|>" in result.output
