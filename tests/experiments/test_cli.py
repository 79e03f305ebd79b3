"""``mlxsft experiment curation`` end to end on a tiny random model: the three outputs, equal steps and tokens
in every arm's own metrics.jsonl, and bad input as a one-line error."""

from __future__ import annotations

import json

from mlxsft.runs import MetricsLog
from tests.helpers import run_cli

TINY = ("--steps", "2", "--seeds", "1", "--batch-size", "1", "--max-seq-len", "256", "--n-questions", "4",
        "--max-tokens", "4", "--n-general", "2", "--embedder", "tfidf", "--select", "100", "--backend", "torch")


def test_curation_end_to_end_on_a_tiny_model(tiny_llama_dir, tmp_path):
    out = tmp_path / "exp"
    proc = run_cli("experiment", "curation", "--model", str(tiny_llama_dir), "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("results.json", "table.md", "curation.png", "filter.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert [a["arm"] for a in results["arms"]] == ["curated", "random", "pool"]
    assert results["filter_report"]["rows_out"] == 100 and results["pool_rows"] == 1200
    assert results["filter_report"]["filters"]["precision"] == 1.0
    # the budget, read from each arm's own metrics.jsonl: the same steps, tokens within the tolerance
    logs = [[r for r in MetricsLog(out / "arms" / f"{arm}-seed0" / "metrics.jsonl").read()
             if r.get("train_loss") is not None] for arm in ("curated", "random", "pool")]
    assert [log[-1]["step"] for log in logs] == [2, 2, 2]
    tokens = [log[-1]["trained_tokens"] for log in logs]
    assert max(tokens) <= min(tokens) * (1 + results["budget"]["tolerance"])
    assert tokens == [a["trained_tokens"] for a in results["arms"]]
    # the arms trained on what they say: N curated rows, N random rows, the pool
    assert [a["rows"] for a in results["arms"]] == [100, 100, 1200]
    table = (out / "table.md").read_text()
    assert "| curated (the N curated rows) |" in table and "precision" in table
    assert table in proc.stdout  # the table is printed as written


def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path):
    for args, message in ((("--seeds", "two"), "--seeds two: expected a count"),
                          (("--data", "mine.jsonl", "--questions", "q.jsonl"), "--data mine.jsonl: no such file"),
                          (("--set", "learning_rate=fast"), "learning_rate: expected float")):
        proc = run_cli("experiment", "curation", "--out", str(tmp_path / "x"), *args)
        assert proc.returncode != 0
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_claims_run_on_the_embedded_instruct_model_and_distill_teaches_the_base_model():
    from mlxsft.cli.experiment import experiment

    defaults = {name: {p.name: p.default for p in cmd.params} for name, cmd in experiment.commands.items()}
    assert {name: d["model"] for name, d in defaults.items()} == {
        "curation": "smollm2-135m-instruct", "methods": "smollm2-135m-instruct",
        "reasoning": "smollm2-135m-instruct", "distill": "gemma3-270m"}
    assert defaults["distill"]["teacher"] == "smollm2-135m-instruct"
