"""``mlxsft experiment reasoning`` end to end on a tiny random model: the outputs, the two arms' data (the same
problems, with and without the trace, none of them held out), equal steps and tokens from each arm's own
metrics.jsonl, the answers rescored from each run's compare.json; the generation limit; bad input."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mlxsft.curate.scan import token_counter
from mlxsft.experiments.reasoning import score_answers
from mlxsft.experiments.reasoning_data import Problem, answer_budget
from mlxsft.runs import MetricsLog
from tests.helpers import run_cli

TINY = ("--steps", "2", "--seeds", "1", "--batch-size", "1", "--max-seq-len", "512", "--held-out", "3",
        "--problems", "200", "--max-tokens", "4", "--n-general", "2", "--backend", "torch")


def test_reasoning_end_to_end_on_a_tiny_model(tiny_llama_dir, tmp_path):
    out = tmp_path / "exp"
    proc = run_cli("experiment", "reasoning", "--model", str(tiny_llama_dir), "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("results.json", "table.md", "reasoning.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert [a["arm"] for a in results["arms"]] == ["answer", "trace"]
    # the two arms train on the same 200 problems, one without and one with its trace; none is held out
    rows = {arm: [json.loads(line) for line in (out / "data" / f"{arm}.jsonl").read_text().splitlines()]
            for arm in ("answer", "trace")}
    assert len(rows["answer"]) == len(rows["trace"]) == 200
    assert [r["messages"][0] for r in rows["answer"]] == [r["messages"][0] for r in rows["trace"]]
    assert all("reasoning" not in r["messages"][1] for r in rows["answer"])
    assert all(r["messages"][1]["reasoning"].endswith(".") for r in rows["trace"])
    held = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    assert len(held) == 3 and not {h["messages"][0]["content"] for h in held} & \
        {r["messages"][0]["content"] for r in rows["trace"]}
    # equal steps and tokens, from each arm's own metrics.jsonl
    logs = [[r for r in MetricsLog(out / "arms" / f"{arm}-seed0" / "metrics.jsonl").read()
             if r.get("train_loss") is not None] for arm in ("answer", "trace")]
    assert [log[-1]["step"] for log in logs] == [2, 2]
    tokens = [log[-1]["trained_tokens"] for log in logs]
    assert max(tokens) <= min(tokens) * (1 + results["budget"]["tolerance"])
    # the trace arm's rows are longer: fewer of them fit in the same tokens
    seen = [a["scored"]["rows_seen"] for a in results["arms"]]
    assert seen[0] > seen[1] > 0
    # the scored numbers are those of the answers each run wrote, trace stripped; --max-tokens as given
    for arm in results["arms"]:
        compare = json.loads((out / "arms" / f"{arm['arm']}-seed0" / "compare.json").read_text())
        assert score_answers(compare)["tuned"]["right"] == arm["scored"]["right"]
        assert arm["scored"]["questions"] == 3
    problems = [Problem(**p) for p in json.loads((out / "data" / "problems.json").read_text())["held_out"]]
    in_tokens = answer_budget(problems, token_counter(str(tiny_llama_dir))[0])
    assert results["max_tokens"] == 4 and results["trace_budget_tokens"] == in_tokens < answer_budget(problems)
    table = (out / "table.md").read_text()
    assert "deterministic problem generator" in table and "cut off in the trace" in table
    assert table in proc.stdout
    for arm in results["arms"]:  # each arm's line shows the trace-stripped score, not the raw one
        assert (f"{arm['arm']} seed 0: right {arm['scored']['right']}/3 with the trace stripped "
                f"(base {arm['scored']['right_base']})") in proc.stdout


def test_the_generation_limit_defaults_to_the_trace_budget(monkeypatch, tmp_path):
    import mlxsft.experiments.reasoning as reasoning
    from mlxsft.cli.experiment import experiment

    seen = []

    def fake(opts, callback):
        seen.append(opts)
        (tmp_path / "table.md").write_text("table\n")
        return {"setup": {"out": str(tmp_path)}}

    monkeypatch.setattr(reasoning, "run_reasoning", fake)
    runner = CliRunner()
    assert runner.invoke(experiment, ["reasoning", "--out", str(tmp_path)]).exit_code == 0
    assert runner.invoke(experiment, ["reasoning", "--out", str(tmp_path), "--max-tokens", "20"]).exit_code == 0
    assert [o.max_tokens for o in seen] == [None, 20]  # None: answer_budget of the held-out problems


def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path):
    for args, message in ((("--data", "mine.jsonl"), "--data: the reasoning experiment generates its problems"),
                          (("--questions", "q.jsonl"), "--questions: the reasoning experiment scores its own")):
        proc = run_cli("experiment", "reasoning", "--out", str(tmp_path / "x"), *args)
        assert proc.returncode != 0
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
