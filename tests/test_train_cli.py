"""``mlxsft train`` end to end through the command line: kill -9 and resume, bad input, the embedded model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from tests.helpers import run_cli, write_data

ENV = dict(os.environ, MLXSFT_NO_BLAS_REEXEC="1", PYTHONUNBUFFERED="1")


def tiny_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(model), "--data", str(data), "--out", str(out), "--no-compare",
            "--batch-size", "2", "--learning-rate", "3e-3", "--max-seq-len", "64", "--report-every", "1",
            "--eval-every", "0", "--backend", "mlx", *extra]


def test_kill_9_then_resume_ends_with_the_same_weights(tiny_llama_dir, tmp_path):
    data = write_data(tmp_path / "data")
    ref = run_cli(*tiny_args(tiny_llama_dir, data, tmp_path / "ref", "--iters", "10", "--save-every", "2"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "mlxsft",
                             *tiny_args(tiny_llama_dir, data, out, "--iters", "10", "--save-every", "2")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    for line in proc.stdout:  # kill as soon as the step-5 line appears: mid-way between checkpoints
        if line.startswith("step 5/"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000004"
    again = run_cli("train", "--resume", str(out))
    assert again.returncode == 0, again.stderr
    assert "resuming at step 4" in again.stdout
    a = mx.load(str(tmp_path / "ref" / "adapters.safetensors"))
    b = mx.load(str(out / "adapters.safetensors"))
    for k in a:
        np.testing.assert_allclose(np.array(a[k]), np.array(b[k]), atol=1e-5)


def test_bad_inputs_give_one_line_and_nonzero_exit(tiny_llama_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{oops\n')
    cases = [
        tiny_args(tiny_llama_dir, bad, tmp_path / "o1", "--iters", "1"),
        tiny_args(tmp_path / "nope", bad, tmp_path / "o2", "--iters", "1"),
        ["train", "--config", str(tmp_path / "missing.yaml")],
        ["train", "--resume", str(tmp_path / "not-a-run")],
        ["train", "--learning-rate", "fast"],
    ]
    results = [run_cli(*args) for args in cases]
    for args, r in zip(cases, results):
        assert r.returncode != 0, args
        assert "Traceback" not in r.stderr, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) >= 1 and len([ln for ln in lines if "error" in ln.lower()]) == 1, r.stderr
    assert f"{bad}:2" in results[0].stderr  # the bad data's error names the file and line
    assert not (tmp_path / "o1").exists()  # nothing written for a run that could not start


def test_plan_prints_the_estimate_and_exits(tiny_llama_dir, tmp_path):
    data = write_data(tmp_path / "data")
    r = run_cli(*tiny_args(tiny_llama_dir, data, tmp_path / "run", "--plan"))
    assert r.returncode == 0, r.stderr
    assert "memory estimate:" in r.stdout and "GB" in r.stdout
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cli_trains_the_embedded_model_for_a_few_steps(tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", "--out", str(out), "--iters", "3", "--max-rows", "24", "--eval-every", "0",
                "--compare-limit", "3", "--compare-max-tokens", "8", "--report-every", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in metrics if m.get("train_loss") is not None]
    assert [m["step"] for m in train] == [1, 2, 3] and all(0 < m["train_loss"] < 20 for m in train)
    assert "base right" in r.stdout and "tuned right" in r.stdout and "forgot KL" in r.stdout
    compare = json.loads((out / "compare.json").read_text())
    assert compare["n_questions"] == 3 and set(compare["models"]) == {"base", "tuned"}
    assert compare["forgetting"]["prompts"] == 16 and compare["forgetting"]["kl"] >= 0
    # the base model has no chat template: it gets Gemma's own turn format, whose end of turn is one token
    assert "<start_of_turn>model" in (out / "chat_template.jinja").read_text()
    # the default backend is the one this machine trains fastest on (`mlxsft doctor`), and its files are there
    from mlxsft.doctor import pick_backend
    from mlxsft.runs.read import run_backend

    backend = pick_backend()[0]
    assert run_backend(out) == backend
    assert (out / ("adapters.safetensors" if backend == "mlx" else "adapter_model.safetensors")).is_file()
