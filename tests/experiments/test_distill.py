"""``mlxsft experiment distill``: agreement with the teacher on a hand-made compare.json, and the command end to
end with a tiny random teacher and student (the teacher's files, the student trained on them, the outputs)."""

from __future__ import annotations

import json

from mlxsft.experiments.distill import agreement, teacher_answers
from tests.helpers import run_cli


def test_agreement_counts_matches_with_the_teacher_and_the_teachers_own_score(tmp_path):
    path = tmp_path / "teacher.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant",
                                                                                      "content": a}]}) + "\n"
                            for q, a in (("2+3?", "5"), ("Capital of France?", "Paris."), ("Sky?", "green"))))
    teacher = teacher_answers(path)
    assert teacher == {"2+3?": "5", "Capital of France?": "Paris.", "Sky?": "green"}
    compare = {"models": ["base", "tuned"], "rows": [
        {"question": "2+3?", "reference": "5", "answers": {"base": "4", "tuned": "The answer is 5"}},
        {"question": "Capital of France?", "reference": "Paris", "answers": {"base": "paris", "tuned": "Paris"}},
        {"question": "Sky?", "reference": "blue", "answers": {"base": "blue", "tuned": "green"}},
        {"question": "Not asked of the teacher", "reference": "x", "answers": {"base": "x", "tuned": "x"}},
        {"question": "Open", "reference": None, "answers": {"base": "a", "tuned": "a"}}]}
    assert agreement(compare, teacher) == {"questions": 4, "teacher_answered": 3, "teacher_right": 2,
                                           "agree_base": 1, "agree_tuned": 3}


TINY = ("--steps", "2", "--seeds", "1", "--batch-size", "1", "--max-seq-len", "128", "--n-questions", "3",
        "--max-tokens", "3", "--teacher-max-tokens", "4", "--n-general", "2", "--backend", "torch")


def test_distill_end_to_end_on_a_tiny_model(tiny_llama_dir, tmp_path):
    out = tmp_path / "exp"
    proc = run_cli("experiment", "distill", "--model", str(tiny_llama_dir), "--teacher", str(tiny_llama_dir),
                   "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("results.json", "table.md", "distill.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    # the teacher answered every training prompt (the bundled split: 300 rows) and the 3 held-out questions
    distilled = [json.loads(line) for line in (out / "data" / "distilled.jsonl").read_text().splitlines()]
    assert len(distilled) == 300 and all(r["meta"]["teacher"] == str(tiny_llama_dir) for r in distilled)
    held = (out / "data" / "teacher-held-out.jsonl").read_text().splitlines()
    assert len(held) == 3 and all(json.loads(line)["meta"]["sampling"]["max_tokens"] == 3 for line in held)
    # the student trained on exactly those rows, and its agreement is recomputed from its own compare.json
    (arm,) = results["arms"]
    assert arm["arm"] == "student" and arm["rows"] == 300 and arm["steps"] == 2
    compare = json.loads((out / "arms" / "student-seed0" / "compare.json").read_text())
    assert arm["agreement"] == agreement(compare, teacher_answers(out / "data" / "teacher-held-out.jsonl"))
    assert arm["agreement"]["teacher_answered"] == 3
    table = (out / "table.md").read_text()
    assert "| student after |" in table and f"| teacher ({tiny_llama_dir}) |" in table
    assert table in proc.stdout


def _prompts(path, n):
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": str(2 * i)}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_distill_best_of_k_trains_on_the_best_sample_and_rejection_leaves_nothing_is_one_line(tiny_llama_dir,
                                                                                               tmp_path):
    prompts = _prompts(tmp_path / "prompts.jsonl", 12)
    out = tmp_path / "exp"
    proc = run_cli("experiment", "distill", "--model", str(tiny_llama_dir), "--teacher", str(tiny_llama_dir),
                   "--data", str(prompts), "--best-of", "3", "--temp", "1.0", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "data" / "distilled.jsonl").read_text().splitlines()]
    # one row per prompt, the best of 3 scored samples, scored against the row's own answer
    assert len(rows) == 12
    for r in rows:
        meta = r["meta"]
        assert meta["step"] == "best-of-k" and meta["k"] == 3 and len(meta["scores"]) == 3
        i = int(r["messages"][0]["content"].split()[2])
        assert meta["score"] == max(meta["scores"]) and meta["reference"] == str(2 * i)
    results = json.loads((out / "results.json").read_text())
    assert results["best_of"] == 3 and results["taught"]["train"]["accepted"] == 12
    assert results["arms"][0]["rows"] == 12
    assert "best of 3 samples at temperature 1.0 by the reference scorer" in (out / "table.md").read_text()

    # a random teacher never says "2 * i" exactly: at threshold 1.0 every prompt is rejected, one clear line
    out2 = tmp_path / "exp2"
    proc = run_cli("experiment", "distill", "--model", str(tiny_llama_dir), "--teacher", str(tiny_llama_dir),
                   "--data", str(prompts), "--best-of", "2", "--threshold", "1.0", "--scorer", "reference:exact",
                   "--out", str(out2), *TINY)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--threshold 1.0: no prompt's best of 2 answers scored that high (12 rejected" in proc.stderr
    assert not (out2 / "results.json").exists()


def test_the_teacher_child_answers_32_prompts_a_batch(monkeypatch, tmp_path):
    import subprocess

    from mlxsft.experiments import distill as d
    from mlxsft.experiments.arms import Setup

    seen = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: seen.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    d._teacher_command(d.DistillExperiment(setup=Setup(out=tmp_path), teacher="t"), "distill", "--teacher",
                       "--teacher-model", tmp_path / "p.jsonl", tmp_path / "o.jsonl", 48, ["--temp", "0"])
    (cmd,) = seen
    assert cmd[3:6] == ["data", "distill", "--teacher"] and cmd[cmd.index("--batch-size") + 1] == "32"
