"""``mlxsft experiment methods``: the arms and their per-method learning rates, the per-arm peak memory reset,
and the command end to end on a tiny random model (outputs, equal steps and tokens from each arm's own
metrics.jsonl, the method each run really trained, trainable parameters that grow with the rank)."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import pytest
import yaml

from mlxsft.experiments.arms import Setup
from mlxsft.experiments.methods import MethodsOptions, method_arms, reset_peak_memory
from mlxsft.runs import MetricsLog
from tests.helpers import run_cli


def test_the_arms_and_their_learning_rates(tmp_path):
    arms = method_arms(MethodsOptions(Setup(out=tmp_path)), Path("d.jsonl"))
    assert [(a.name, a.overrides) for a in arms] == [
        ("lora-r8", {"method": "lora", "rank": 8, "learning_rate": 1e-3}),
        ("lora-r64", {"method": "lora", "rank": 64, "learning_rate": 1e-3}),
        ("full", {"method": "full", "learning_rate": 1e-4})]
    # --set learning_rate=... is for every arm: the methods' own rates give way to it
    arms = method_arms(MethodsOptions(Setup(out=tmp_path, overrides={"learning_rate": 5e-4}), ranks=(4,)),
                       Path("d.jsonl"))
    assert [(a.name, a.overrides) for a in arms] == [("lora-r4", {"method": "lora", "rank": 4}),
                                                     ("full", {"method": "full"})]
    assert [a.description for a in arms] == ["LoRA rank 4, lr 0.0005", "full fine-tuning, lr 0.0005"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="clear_refs is Linux's")
def test_each_arm_starts_its_peak_memory_afresh():
    big = bytearray(300_000_000)
    big[::4096] = b"\x01" * len(big[::4096])  # touch every page: resident
    high = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del big
    reset_peak_memory()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < high - 200_000  # KiB: the 300 MB are gone


TINY = ("--steps", "2", "--seeds", "1", "--batch-size", "1", "--max-seq-len", "128", "--n-questions", "3",
        "--max-tokens", "3", "--n-general", "2", "--ranks", "2,4", "--backend", "torch")


def test_methods_end_to_end_on_a_tiny_model(tiny_llama_dir, tmp_path):
    out = tmp_path / "exp"
    proc = run_cli("experiment", "methods", "--model", str(tiny_llama_dir), "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("results.json", "table.md", "methods.png", "methods-cost.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    names = ["lora-r2", "lora-r4", "full"]
    assert [a["arm"] for a in results["arms"]] == names
    # the budget from each arm's own metrics.jsonl: the same rows and seed pack the same, so equal steps and tokens
    logs = [[r for r in MetricsLog(out / "arms" / f"{n}-seed0" / "metrics.jsonl").read()
             if r.get("train_loss") is not None] for n in names]
    assert [log[-1]["step"] for log in logs] == [2, 2, 2]
    assert len({log[-1]["trained_tokens"] for log in logs}) == 1
    assert [log[-1]["trained_tokens"] for log in logs] == [a["trained_tokens"] for a in results["arms"]]
    # each run trained what its arm says, at its method's learning rate
    configs = [yaml.safe_load((out / "arms" / f"{n}-seed0" / "config.yaml").read_text()) for n in names]
    assert [(c["lora"]["method"], c["lora"]["rank"], c["optim"]["learning_rate"]) for c in configs] == \
        [("lora", 2, 1e-3), ("lora", 4, 1e-3), ("full", 8, 1e-4)]
    r2, r4, full = (a["trainable_params"] for a in results["arms"])
    assert r4 == 2 * r2 > 0 and full > 0 and full != r4  # a LoRA's parameters grow linearly with its rank
    for arm in results["arms"]:
        assert arm["kl"] > 0 and arm["tuned_nll"] > 0 and arm["peak_memory_gb"] > 0 and arm["s_per_step"] > 0
    summary = results["summary"]
    assert summary["full"]["gain"]["values"] == [results["arms"][2]["right"] - results["arms"][2]["right_base"]]
    table = (out / "table.md").read_text()
    assert "| lora-r2 (LoRA rank 2, lr 0.001) |" in table and "| full (full fine-tuning, lr 0.0001) |" in table
    assert table in proc.stdout  # printed as written


def test_bad_ranks_are_one_line_and_a_nonzero_exit(tmp_path):
    for ranks in ("eight", "8,8", "0"):
        proc = run_cli("experiment", "methods", "--out", str(tmp_path / "x"), "--ranks", ranks)
        assert proc.returncode != 0
        assert f"--ranks {ranks}: expected" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
            proc.stderr
