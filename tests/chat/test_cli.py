"""``mlxsft chat`` through the command line: --json lines from scripted stdin, the torch backend, --compare with a
run's own template, and a saved transcript that validates and trains. On the tiny random llama and a run folder
with random LoRA weights (``tests.helpers.make_run``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlxsft.backends.mlx import generate as G
from tests.helpers import make_cfg, make_run, run_cli


@pytest.fixture(scope="session")
def tuned_run(tiny_llama_dir, tmp_path_factory) -> Path:
    return make_run(tiny_llama_dir, tmp_path_factory.mktemp("chat-run") / "run")


def cli(args: list[str], stdin: str = "") -> "object":
    from mlxsft.cli.main import cli as group

    result = CliRunner().invoke(group, args, input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _base_model(run: Path) -> str:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["model"]["model"]


def test_scripted_stdin_json_lines_hold_prompt_answers_and_token_counts(tiny_llama_dir):
    proc = run_cli("chat", "--model", str(tiny_llama_dir), "--json", "--max-tokens", "6", "--temp", "1",
                   input="hello\nand more\n/reset\nagain\n", timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == ["hello", "and more", "again"]
    assert all(set(r["answers"]) == {"base"} and r["tokens"]["base"] >= 1 for r in rows)
    assert rows[1]["reused_tokens"]["base"] >= rows[0]["prompt_tokens"]["base"]  # the KV cache carried over
    assert rows[2]["reused_tokens"]["base"] == 0  # /reset cleared it
    assert "new conversation" in proc.stderr


def test_torch_backend_chats_through_the_same_session(tiny_llama_dir):
    pytest.importorskip("torch")
    out = cli(["chat", "--model", str(tiny_llama_dir), "--backend", "torch", "--json", "--max-tokens", "4"],
              stdin="hello\nmore\n").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["prompt"] for r in rows] == ["hello", "more"] and all(r["tokens"]["base"] >= 1 for r in rows)
    assert rows[1]["reused_tokens"]["base"] > 0


def test_compare_holds_both_answers_with_the_runs_template(tuned_run, tiny_llama_dir):
    from transformers import AutoTokenizer

    out = cli(["chat", "--adapter", str(tuned_run), "--compare", "--json", "--max-tokens", "8"],
              stdin="What is the capital of France?\nSpell cat backwards.\n").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 and all(set(r["answers"]) == {"base", "tuned"} for r in rows)
    assert all(r["tokens"]["base"] >= 1 and r["tokens"]["tuned"] >= 1 for r in rows)
    assert rows[0]["answers"]["base"] != rows[0]["answers"]["tuned"]  # the adapters are on for tuned only
    hf = AutoTokenizer.from_pretrained(tiny_llama_dir)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    run_tpl = (tuned_run / "chat_template.jinja").read_text()
    expected = len(G.render_prompt(hf, msgs, run_tpl))
    assert expected != len(G.render_prompt(hf, msgs, hf.chat_template))
    assert rows[0]["prompt_tokens"] == {"base": expected, "tuned": expected}  # the run's template, for both
    base_alone = cli(["chat", "--model", str(tiny_llama_dir), "--json", "--max-tokens", "8"],
                     stdin="What is the capital of France?\n").stdout
    # without a run, the tokenizer's own template
    assert json.loads(base_alone)["prompt_tokens"]["base"] != expected
    plain = cli(["chat", "--adapter", str(tuned_run), "--compare", "--max-tokens", "4"], stdin="Hi\n").stdout
    assert plain.startswith("[base] ") and "\n[tuned] " in plain


def test_a_saved_transcript_validates_and_trains(tuned_run, tmp_path):
    from mlxsft.train import run_training

    transcript = tmp_path / "chat.jsonl"
    cli(["chat", "--adapter", str(tuned_run), "--system", "Be brief.", "--max-tokens", "12", "--temp", "1"],
        stdin=f"What is 2+2?\nSay hello in Spanish.\n/reset\nName a primary color.\n/save {transcript}\n")
    rows = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [[m["role"] for m in r["messages"]] for r in rows] == [
        ["system", "user", "assistant", "user", "assistant"], ["system", "user", "assistant"]]
    check = cli(["data", "validate", str(transcript)])
    assert "no problems" in check.output  # (and exit code 0)
    data = tmp_path / "data"
    data.mkdir()
    transcript.rename(data / "train.jsonl")
    out = run_training(make_cfg(_base_model(tuned_run), data, tmp_path / "run2", iters=2, batch_size=2))
    assert out.result.steps == 2 and math.isfinite(out.result.train_loss)
