"""``mlxsft experiment distill``: does training on a teacher's answers transfer the teacher's skill to a student?

    results = run_distill(DistillExperiment(Setup(out=Path("runs/experiments/distill")), teacher="smollm2-135m-instruct"))

1. The teacher (a model spec, or an OpenAI-compatible ``http(s)://`` endpoint: ``mlxsft.curate.teachers``)
   answers the training prompts (the bundled training split's, or ``--data``'s; a row ending in an assistant
   turn is asked its last user turn) with ``data distill``'s machinery, greedily, or with ``--best-of K``
   through ``data best-of-k``'s (K sampled answers per prompt, the best by ``--scorer`` kept, a best below
   ``--threshold`` dropped: rejection sampling); and the held-out questions, greedily, so the student can be
   compared with it. The files are resumable (``curate.distill``, ``curate.best_of_k``).
2. The student (``--model``, default the embedded base model) trains on the teacher's answers, at every seed
   (one arm, ``student``), with the before/after table of ``mlxsft train``.
3. On the held-out questions, before (the base student) and after: exact or numeric match with the reference,
   and agreement with the teacher (the student's answer matches the teacher's, exactly or numerically),
   against the teacher's own score on the same questions.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from mlxsft.experiments.arms import INSTRUCT_MODEL, Arm, ArmResult, Setup, aggregate, check_equal_budget, held_out_prompts, \
    prepare_model, prepare_questions, run_arm
from mlxsft.experiments.events import Callback, silent
from mlxsft.experiments.stats import Spread, spread

DEFAULT_TEACHER = INSTRUCT_MODEL
METRICS = ("right", "right_base", "wins", "regressions", "kl", "train_loss", "steps", "trained_tokens", "rows",
           "s_per_step", "peak_memory_gb", "total_s")


@dataclass
class DistillExperiment:
    setup: Setup  # setup.model is the student
    teacher: str = DEFAULT_TEACHER
    data: Optional[Path] = None  # the prompts the teacher answers (default: the bundled training split)
    teacher_max_tokens: int = 48  # new tokens per teacher answer
    teacher_model_name: Optional[str] = None  # the model an endpoint serves
    api_key_env: Optional[str] = None
    best_of: int = 1  # K > 1: the training answers are the best of K samples (``data best-of-k``)
    temp: float = 0.8  # sampling temperature of the K samples
    scorer: str = "reference"  # what picks the best of K (a prompt row's reference: its dataset answer)
    threshold: Optional[float] = None  # a prompt whose best scores below this is dropped from training


# answers per batch (a local teacher decodes them together): 96 of the default prompts took 61.5 s at 32 against
# 68.8 s at data distill's default 16 (64: 64.0 s), measured on the 2-core build machine
TEACHER_BATCH = 32


def _teacher_command(opts: DistillExperiment, command: str, model_flag: str, name_flag: str, prompts: Path,
                     out: Path, max_tokens: int, extra: list[str]) -> float:
    """Run ``mlxsft data <command>`` for the teacher in a child process; returns its wall time.

    A child, not a call: a local teacher generates on MLX, which wants OpenBLAS preloaded on Linux, while a torch
    student must not have it (a preloaded OpenBLAS slows torch ~10x); each process picks its own BLAS
    (``registry.choose_blas``). In one process the teacher ran on MLX's reference BLAS at a few GFLOP/s."""
    import subprocess
    import sys
    import time

    from mlxsft.errors import RunError

    cmd = [sys.executable, "-m", "mlxsft", "data", command, model_flag, opts.teacher, "--prompts", str(prompts),
           "--out", str(out), "--max-tokens", str(max_tokens), "--batch-size", str(TEACHER_BATCH), *extra]
    if opts.teacher_model_name:
        cmd += [name_flag, opts.teacher_model_name]
    if opts.api_key_env:
        cmd += ["--api-key-env", opts.api_key_env]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[-1]
        raise RunError(f"the teacher ({' '.join(cmd[3:5])}) failed: {last}")
    return time.perf_counter() - start


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ask_teacher(opts: DistillExperiment, prompts: Path, out: Path, max_tokens: int,
                callback: Callback) -> dict[str, Any]:
    """The teacher's greedy answers to ``prompts`` in ``out`` (``data distill``: resumed when it holds some)."""
    callback("stage", {"text": f"the teacher {opts.teacher} answers {prompts.name}"})
    before = len(_rows(out))
    elapsed = _teacher_command(opts, "distill", "--teacher", "--teacher-model", prompts, out, max_tokens,
                               ["--temp", "0"])
    rows = _rows(out)
    return {"rows_written": len(rows) - before, "rows_before": before,
            "tokens": sum(int(r.get("meta", {}).get("tokens") or 0) for r in rows[before:]), "elapsed_s": elapsed}


def best_of_teacher(opts: DistillExperiment, prompts: Path, out: Path, callback: Callback) -> dict[str, Any]:
    """The best of ``opts.best_of`` sampled teacher answers per training prompt in ``out`` (``data best-of-k``,
    resumed); prompts whose best scores under ``opts.threshold`` go to the rejected file, not to training."""
    from mlxsft.errors import RunError

    callback("stage", {"text": f"the teacher {opts.teacher} answers {prompts.name}, best of {opts.best_of} by "
                               f"{opts.scorer}"})
    report = out.with_name(out.stem + ".report.json")
    extra = ["--k", str(opts.best_of), "--temp", str(opts.temp), "--scorer", opts.scorer, "--report", str(report)]
    if opts.threshold is not None:
        extra += ["--threshold", str(opts.threshold)]
    _teacher_command(opts, "best-of-k", "--model", "--model-name", prompts, out, opts.teacher_max_tokens, extra)
    res = json.loads(report.read_text())
    if not res["accepted"]:
        raise RunError(f"--threshold {opts.threshold}: no prompt's best of {opts.best_of} answers scored that high "
                       f"({res['rejected']} rejected, in {res['rejected_file']}); nothing to train the student on")
    # rows_written + rows_before: the rows the student trains on, as for a greedy teacher
    return {"rows_written": res["accepted"], "rows_before": 0, "accepted": res["accepted"],
            "rejected": res["rejected"], "failed": res["failed"], "acceptance_rate": res["acceptance_rate"],
            "best_score_mean": res["best_scores"]["mean"], "k": res["k"], "scorer": res["scorer"],
            "threshold": res["threshold"], "tokens": res["tokens"], "elapsed_s": res["elapsed_s"]}


def teacher_answers(path: Path) -> dict[str, str]:
    """The teacher's answer per held-out question (its last user turn), from a distilled file."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                msgs = json.loads(line)["messages"]
                question = next(m["content"] for m in reversed(msgs[:-1]) if m["role"] == "user")
                out[question] = msgs[-1]["content"]
    return out


def matches(answer: Optional[str], reference: Optional[str]) -> bool:
    """Exact or numeric match (``scoring.verdict`` right); a missing answer matches nothing."""
    from mlxsft.scoring import score, verdict

    return answer is not None and reference is not None and verdict(score(answer, reference)) == "right"


def agreement(compare: dict[str, Any], teacher: dict[str, str]) -> dict[str, Any]:
    """Per model of a compare.json (base, tuned): held-out answers that match the teacher's answer; and the
    teacher's own right answers on the same questions."""
    rows = [r for r in compare["rows"] if r.get("reference") is not None]
    out: dict[str, Any] = {"questions": len(rows), "teacher_answered": sum(r["question"] in teacher for r in rows),
                           "teacher_right": sum(matches(teacher.get(r["question"]), r["reference"]) for r in rows)}
    for model in compare["models"]:
        out[f"agree_{model}"] = sum(matches(r["answers"].get(model), teacher.get(r["question"])) for r in rows)
    return out


def run_distill(opts: DistillExperiment, callback: Callback = silent) -> dict[str, Any]:
    from mlxsft.data.bundled_paths import bundled_path
    from mlxsft.errors import ConfigError
    from mlxsft.experiments.curation import _setup_dict, check_held_out, machine
    from mlxsft.experiments.outputs import bar_panels, write_results, write_table

    setup = opts.setup
    prompts = Path(opts.data) if opts.data else bundled_path("train")
    if not prompts.is_file():
        raise ConfigError(f"--data {prompts}: no such file")
    data = setup.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    questions, _ = prepare_questions(setup)
    check_held_out(prompts, held_out_prompts(setup))
    # the held-out answers at the student's limit, so both are cut alike
    if opts.best_of > 1:
        train = best_of_teacher(opts, prompts, data / "distilled.jsonl", callback)
    else:
        train = ask_teacher(opts, prompts, data / "distilled.jsonl", opts.teacher_max_tokens, callback)
    taught = {"train": train,
              "held_out": ask_teacher(opts, questions, data / "teacher-held-out.jsonl", setup.max_tokens, callback)}
    teacher = teacher_answers(data / "teacher-held-out.jsonl")
    setup = dataclasses.replace(setup, model_spec=prepare_model(setup, callback))

    results: list[ArmResult] = []
    agreements: list[dict[str, Any]] = []
    base_memo: dict = {}
    arm = Arm("student", data / "distilled.jsonl", description=f"trained on {opts.teacher}'s answers")
    for seed in setup.seeds:
        callback("arm_start", {"arm": arm.name, "seed": seed, "index": len(results) + 1, "total": len(setup.seeds)})
        result, cached = run_arm(setup, arm, seed, callback, base_memo)
        results.append(result)
        agreements.append(agreement(json.loads((Path(result.run_dir) / "compare.json").read_text()), teacher))
        callback("arm_done", {"result": result, "cached": cached})
    budget = check_equal_budget(results)
    summary = aggregate(results, METRICS)["student"]
    for key in ("agree_base", "agree_tuned", "teacher_right"):
        summary[key] = spread(a[key] for a in agreements)
    payload = {"experiment": "distill", "setup": _setup_dict(setup), "teacher": opts.teacher, "prompts": str(prompts),
               "teacher_max_tokens": opts.teacher_max_tokens, "best_of": opts.best_of, "temp": opts.temp,
               "taught": taught, "budget": budget,
               "summary": {m: s.to_dict() for m, s in summary.items()},
               "arms": [r.to_dict() | {"agreement": a} for r, a in zip(results, agreements)], "machine": machine()}
    write_results(setup.out, payload)
    write_table(setup.out, distill_table(payload, summary))
    n_q = agreements[0]["questions"]
    bar_panels(setup.out / "distill.png", ["student before", "student after", "teacher"],
               [(f"held-out right (of {n_q})", "questions",
                 [summary["right_base"], summary["right"], summary["teacher_right"]]),
                (f"agrees with the teacher (of {n_q})", "questions",
                 [summary["agree_base"], summary["agree_tuned"], spread([n_q])])],
               title=f"Distilling {opts.teacher} into {Path(setup.model).name} (mean ± sd over seeds)")
    callback("done", {"out": str(setup.out)})
    return payload


def distill_table(payload: dict[str, Any], m: dict[str, Spread]) -> str:
    from mlxsft.experiments.outputs import budget_text, markdown_table

    s, b, t = payload["setup"], payload["budget"], payload["taught"]["train"]
    n_q = payload["arms"][0]["agreement"]["questions"]
    if t.get("k", 1) > 1:
        how = (f"best of {t['k']} samples at temperature {payload['temp']} by the {t['scorer']} scorer"
               + (f", {t['rejected']} prompts whose best scored under {t['threshold']} dropped" if t["threshold"]
                  is not None else ""))
    else:
        how = "greedy"
    lines = ["# Distillation transfers a skill? (`mlxsft experiment distill`)\n",
             f"Teacher {payload['teacher']} answered {t['rows_written'] + t['rows_before']} training prompts of "
             f"{Path(payload['prompts']).name} ({how}, at most {payload['teacher_max_tokens']} new tokens); the "
             f"student {s['model']} ({s['backend']} backend, LoRA) trained on them for {budget_text(s, b, per='')}; scored on {n_q} held-out "
             f"questions (greedy, at most {s['max_tokens']} new tokens). Mean ± sd over seeds.\n"]
    lines.append(markdown_table(["model", "held-out right", "agrees with the teacher"], [
        ["student before (base)", f"{m['right_base'].text(1)} / {n_q}", f"{m['agree_base'].text(1)} / {n_q}"],
        ["student after", f"{m['right'].text(1)} / {n_q}", f"{m['agree_tuned'].text(1)} / {n_q}"],
        [f"teacher ({payload['teacher']})", f"{m['teacher_right'].text(1)} / {n_q}", "—"]]))
    lines.append(f"\nRight: exact or numeric match with the reference. Agrees: the student's answer matches the "
                 f"teacher's answer to the same question, exactly or numerically. Final train loss "
                 f"{m['train_loss'].text(3)}, forgetting KL {m['kl'].text(3)}, {m['s_per_step'].text(2)} s / step.\n")
    return "\n".join(lines)
