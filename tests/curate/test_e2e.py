"""End to end with the embedded SmolLM2-135M-Instruct: prompts -> distill -> best-of-K (reference scorer on
arithmetic) -> filter -> `mlxsft train` (2 steps) -> `mlxsft eval`. Slow: the real model on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.curate.conftest import arithmetic_prompts, read_jsonl, write_jsonl

pytestmark = pytest.mark.slow
ENV = dict(os.environ, PYTHONUNBUFFERED="1")  # the CLI's own OpenBLAS re-exec stays on, as for users
MODEL = "smollm2-135m-instruct"


def mlxsft(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "mlxsft", *args], capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0, f"mlxsft {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def test_prompts_to_distill_to_best_of_k_to_filter_to_train_to_eval(tmp_path):
    open_prompts = write_jsonl(tmp_path / "open.jsonl", [
        {"question": "Name one primary colour."}, {"question": "What is the opposite of hot?"},
        {"question": "Give a synonym for happy."}, {"question": "What do bees make?"}])
    math = arithmetic_prompts(tmp_path / "math.jsonl")

    mlxsft("data", "distill", "--teacher", MODEL, "--prompts", str(open_prompts), "--out",
           str(tmp_path / "distilled.jsonl"), "--max-tokens", "24")
    distilled = read_jsonl(tmp_path / "distilled.jsonl")
    assert len(distilled) == 4 and all(r["meta"]["teacher"] == MODEL for r in distilled)
    assert all(r["messages"][-1]["content"].strip() for r in distilled)

    r = mlxsft("data", "best-of-k", "--model", MODEL, "--prompts", str(math), "--k", "3", "--temp", "0.7",
               "--scorer", "reference", "--max-tokens", "12", "--out", str(tmp_path / "best.jsonl"),
               "--report", str(tmp_path / "best.report.json"))
    report = json.loads((tmp_path / "best.report.json").read_text())
    best = read_jsonl(tmp_path / "best.jsonl")
    assert report["accepted"] == len(best) == 6 and report["candidate_scores"]["n"] == 18  # no threshold: all kept
    assert all(row["meta"]["score"] == max(row["meta"]["scores"]) for row in best)
    assert "acceptance rate" in r.stdout

    combined = tmp_path / "combined.jsonl"
    combined.write_text((tmp_path / "distilled.jsonl").read_text() + (tmp_path / "best.jsonl").read_text())
    mlxsft("data", "filter", "--in", str(combined), "--out", str(tmp_path / "train.jsonl"), "--select", "8",
           "--embedder", "tfidf")
    filtered = json.loads((tmp_path / "train.report.json").read_text())
    assert filtered["rows_in"] == 10 and filtered["rows_out"] == len(read_jsonl(tmp_path / "train.jsonl")) <= 8

    run = tmp_path / "run"
    mlxsft("train", "--model", MODEL, "--data", str(tmp_path / "train.jsonl"), "--out", str(run), "--iters", "2",
           "--batch-size", "2", "--max-seq-len", "128", "--no-compare", "--eval-every", "0", "--report-every", "1")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if m.get("train_loss") is not None] == [1, 2]

    ev = mlxsft("eval", "--adapter", str(run), "--questions", str(math), "--limit", "3", "--max-tokens", "8",
                "--json")
    result = json.loads(ev.stdout)
    assert result["questions"]["n_questions"] == 3 and result["questions"]["n_scored"] == 3
    assert result["adapter"] == str(run)
