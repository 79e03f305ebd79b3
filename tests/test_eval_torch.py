"""``mlxsft eval`` and ``mlxsft chat`` on runs trained with ``--backend torch``.

A torch run folder holds PEFT adapter files (LoRA/DoRA) or ``trainable.safetensors`` (full) and
``run_info.json``; chat and eval pick the torch backend from it, score losses with the trainer's own
validation code, and refuse ``--backend mlx`` with a one-line hint.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("peft")

from tests.helpers import make_cfg, run_cli, write_data  # noqa: E402

from mlxsft.runs import MetricsLog  # noqa: E402


def last_val_loss(run: Path) -> float:
    return [r["val_loss"] for r in MetricsLog(run / "metrics.jsonl").read() if "val_loss" in r][-1]


@pytest.fixture(scope="module")
def torch_runs(tiny_llama_dir, tmp_path_factory) -> dict:
    """A LoRA and a full fine-tuning torch run, evaluated on their validation split at the last step."""
    from mlxsft.train import run_training

    root = tmp_path_factory.mktemp("torch-runs")
    data = write_data(root / "data")
    runs = {}
    for method in ("lora", "full"):
        lr = 1e-2 if method == "lora" else 1e-3
        run_training(make_cfg(tiny_llama_dir, data, root / method, trainer="torch", method=method, iters=3,
                              eval_every=3, learning_rate=lr))
        runs[method] = root / method
    runs["data"] = data
    return runs


def eval_json(args: list[str]) -> dict:
    from mlxsft.cli.main import cli

    result = CliRunner().invoke(cli, ["eval", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_eval_data_reproduces_the_trainers_last_validation_loss(torch_runs, method):
    run = torch_runs[method]
    out = eval_json(["--adapter", str(run), "--data", str(torch_runs["data"]), "--compare"])
    assert out["backend"] == "torch"  # chosen from the run's run_info.json, no --backend given
    tuned, base = out["data"]["results"]["tuned"], out["data"]["results"]["base"]
    # the saved weights, loaded back through PEFT / trainable.safetensors, give the loss the trainer logged
    assert math.isclose(tuned["loss"], last_val_loss(run), rel_tol=1e-5), (tuned, last_val_loss(run))
    assert base["tokens"] == tuned["tokens"] > 0
    assert base["loss"] > tuned["loss"] + 1e-3  # training on these rows lowered their loss


def test_eval_questions_compare_on_a_torch_run(torch_runs, tmp_path):
    qs = tmp_path / "q.jsonl"
    qs.write_text(json.dumps({"question": "What is 2+2?", "reference": "4"}) + "\n"
                  + json.dumps({"question": "Spell cat backwards."}) + "\n")
    out = eval_json(["--adapter", str(torch_runs["lora"]), "--questions", str(qs), "--compare",
                     "--max-tokens", "5", "--backend", "torch"])
    q = out["questions"]
    assert out["models"] == ["base", "tuned"] and (q["n_questions"], q["n_scored"]) == (2, 1)
    assert all(r["tokens"]["base"] >= 1 and r["tokens"]["tuned"] >= 1 for r in q["rows"])
    assert set(q["totals"]["tuned"]) == {"exact", "numeric", "contains", "similarity", "right", "stop_rate",
                                         "stop_rate_scored"}
    assert {r["finish_reason"]["tuned"] for r in q["rows"]} <= {"stop", "length"}
    assert q["forgetting"]["prompts"] == 16 and q["forgetting"]["kl"] >= 0  # on the torch backend too


def test_a_torch_lora_run_evaluates_on_mlx_with_the_same_loss_and_answers(torch_runs, tmp_path):
    qs = tmp_path / "q.jsonl"
    qs.write_text(json.dumps({"question": "What is 2+2?", "reference": "4"}) + "\n")
    args = ["--adapter", str(torch_runs["lora"]), "--data", str(torch_runs["data"]), "--questions", str(qs),
            "--max-tokens", "6"]
    on_torch, on_mlx = eval_json([*args, "--backend", "torch"]), eval_json([*args, "--backend", "mlx"])
    assert on_mlx["backend"] == "mlx" and on_torch["backend"] == "torch"
    a, b = on_torch["data"]["results"]["tuned"], on_mlx["data"]["results"]["tuned"]
    assert a["tokens"] == b["tokens"] and math.isclose(a["loss"], b["loss"], rel_tol=1e-4), (a, b)
    assert on_mlx["questions"]["rows"][0]["answers"] == on_torch["questions"]["rows"][0]["answers"]


def test_a_full_run_on_the_other_backend_is_one_line_with_a_hint(torch_runs):
    proc = run_cli("eval", "--adapter", str(torch_runs["full"]), "--data", str(torch_runs["data"]),
                   "--backend", "mlx", timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "trained with --backend torch" in proc.stderr and "use --backend torch" in proc.stderr


def test_checkpoint_folders_of_a_lora_run_point_to_the_run(torch_runs):
    from mlxsft.errors import RunError
    from mlxsft.target import resolve_target

    step = next((torch_runs["lora"] / "checkpoints").glob("step-*"))
    with pytest.raises(RunError, match="missing adapter_model.safetensors"):
        resolve_target(None, step)
    t = resolve_target(None, torch_runs["lora"] / "best")  # best/ holds PEFT files; config found above it
    assert (t.backend, t.fine_tune_type) == ("torch", "lora")
    assert resolve_target(None, torch_runs["full"]).fine_tune_type == "full"


def test_chat_picks_torch_for_a_torch_run(torch_runs):
    from mlxsft.cli.main import cli

    result = CliRunner().invoke(cli, ["chat", "--adapter", str(torch_runs["lora"]), "--compare", "--json",
                                      "--max-tokens", "4"], input="hello\n", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.splitlines()[0])
    assert set(row["answers"]) == {"base", "tuned"} and row["tokens"]["tuned"] >= 1


def test_the_cli_skips_the_mlx_blas_preload_for_torch_runs(torch_runs, tmp_path):
    from mlxsft.backends import registry

    run = str(torch_runs["lora"])
    assert registry.backend_of(None, run) == "torch" and not registry.spec("torch").wants_openblas
    assert registry.backend_of(None, f"{run}/best") == "torch"
    assert registry.backend_of("mlx", run) == "mlx"  # an explicit choice wins
    assert registry.backend_of(None, str(tmp_path)) == "mlx"


def test_an_mlx_run_evaluates_on_torch_through_a_converted_adapter(tiny_llama_dir, torch_runs, tmp_path):
    from mlxsft.train import run_training
    from mlxsft.target import resolve_target

    run = tmp_path / "mlx-run"
    run_training(make_cfg(tiny_llama_dir, torch_runs["data"], run, iters=3, learning_rate=3e-2))
    args = ["--adapter", str(run), "--data", str(torch_runs["data"])]
    on_mlx, on_torch = eval_json([*args, "--backend", "mlx"]), eval_json([*args, "--backend", "torch"])
    a, b = on_mlx["data"]["results"]["tuned"], on_torch["data"]["results"]["tuned"]
    assert math.isclose(a["loss"], b["loss"], rel_tol=1e-4), (a, b)
    converted = resolve_target(None, run, "torch").adapter
    assert (converted / "adapter_model.safetensors").is_file() and (converted / ".complete").is_file()
    assert resolve_target(None, run, "torch").adapter == converted  # converted once, then reused
