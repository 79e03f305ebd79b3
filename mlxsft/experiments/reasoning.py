"""``mlxsft experiment reasoning``: do worked traces teach a model to reason, at equal steps?

    results = run_reasoning(ReasoningOptions(Setup(out=Path("runs/experiments/reasoning"))), callback)

1. Two-step problems (arithmetic, unit conversions through an intermediate unit, short word problems) from the
   deterministic generator of ``reasoning_data.py``, which also writes their traces; the held-out problems are
   drawn first and no training problem asks one of them (checked).
2. Two arms at every seed, at the same optimizer steps and (packed) tokens: ``answer`` trains on the final answer
   alone, ``trace`` on the worked trace in the assistant's reasoning field (the template's reasoning channel,
   or ``<think>...</think>`` inline before the answer) followed by the answer. A trace row is longer, so at
   equal tokens the trace arm sees fewer problems; ``rows seen`` in the table says how many.
3. Both answer the held-out problems greedily (the before/after table of ``mlxsft train``); the scored answer is
   what follows ``</think>`` (the whole answer when there is no trace), scored by exact or numeric match
   (``mlxsft.scoring``). An answer cut off inside its trace counts as wrong, and the table says how often that
   happened; the generation limit defaults to one that every reference trace fits in, counted in the student's
   own tokens (``answer_budget``).
4. ``OUT/results.json``, ``OUT/table.md``, ``OUT/reasoning.png`` (held-out right per arm and per kind).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from mlxsft.experiments.arms import Arm, ArmResult, Setup, aggregate, check_equal_budget, held_out_prompts, \
    prepare_model, prepare_questions, run_arm
from mlxsft.experiments.events import Callback, silent
from mlxsft.experiments.reasoning_data import KINDS, ReasoningSpec, answer_budget, generate, problems_to_dicts, \
    strip_trace, trace_steps_right, write_questions, write_rows
from mlxsft.experiments.stats import Spread, spread

ARMS = ("answer", "trace")
ARM_TEXT = {"answer": "the final answer alone", "trace": "a worked trace, then the answer"}
TRACE_SOURCE = ("the traces come from mlxsft's deterministic problem generator (reasoning_data.py), not from a "
                "model: every step is right by construction")
METRICS = ("train_loss", "steps", "trained_tokens", "rows", "s_per_step", "peak_memory_gb", "kl", "train_s",
           "total_s")
SCORED = ("right", "right_base", "cut_off", "traced", "steps_right", "rows_seen")


@dataclass
class ReasoningOptions:
    setup: Setup
    problems: ReasoningSpec = field(default_factory=ReasoningSpec)
    max_tokens: Optional[int] = None  # new tokens per answer; None: every reference trace fits (answer_budget)


@dataclass
class ArmScore:
    """An arm's held-out answers scored with the trace stripped (from its run's compare.json)."""

    right: int  # tuned answers right after the trace is stripped
    right_base: int  # ... the base model's, scored the same way
    questions: int
    cut_off: int  # tuned answers that ended inside their trace (counted wrong)
    traced: int  # tuned answers that wrote a complete trace
    steps_right: int  # ... whose every step (x op y = z) is right
    by_kind: dict[str, int]  # right per kind of problem
    rows_seen: float  # training rows the packed tokens cover: trained tokens / mean tokens per row


def score_answers(compare: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per model of a compare.json (base, tuned): questions, right (trace stripped), cut off, traced (a complete
    trace), steps right (traces whose every step is right) and right per kind of problem."""
    from mlxsft.scoring import score, verdict

    out: dict[str, dict[str, Any]] = {}
    for row in compare["rows"]:
        if row.get("reference") is None:
            continue
        for model, text in row["answers"].items():
            c = out.setdefault(model, {"questions": 0, "right": 0, "cut_off": 0, "traced": 0, "steps_right": 0,
                                       "by_kind": {k: 0 for k in KINDS}})
            c["questions"] += 1
            answer, how = strip_trace(text)
            if how == "cut_off":
                c["cut_off"] += 1
            elif how == "trace":
                c["traced"] += 1
                c["steps_right"] += trace_steps_right(text[:text.rfind("</think>")])
            if answer is not None and verdict(score(answer, row["reference"])) == "right":
                c["right"] += 1
                if row.get("category") in c["by_kind"]:
                    c["by_kind"][row["category"]] += 1
    return out


def score_arm(result: ArmResult) -> ArmScore:
    """The arm's held-out answers, scored from its run's compare.json (so an arm read back is scored alike)."""
    run = Path(result.run_dir)
    models = score_answers(json.loads((run / "compare.json").read_text()))
    tuned, base = models.get("tuned", {}), models.get("base", {})
    summary = json.loads((run / "data_summary.json").read_text()) if (run / "data_summary.json").is_file() else {}
    per_row = summary.get("train", {}).get("mean_len")
    return ArmScore(right=tuned.get("right", 0), right_base=base.get("right", 0), questions=tuned.get("questions", 0),
                    cut_off=tuned.get("cut_off", 0), traced=tuned.get("traced", 0),
                    steps_right=tuned.get("steps_right", 0), by_kind=tuned.get("by_kind", {k: 0 for k in KINDS}),
                    rows_seen=round(result.trained_tokens / per_row, 1) if per_row else float("nan"))


def run_reasoning(opts: ReasoningOptions, callback: Callback = silent) -> dict[str, Any]:
    from mlxsft.experiments.curation import _setup_dict, check_held_out, machine
    from mlxsft.experiments.outputs import write_results, write_table
    from mlxsft.files import atomic_write_json

    out = opts.setup.out
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    callback("stage", {"text": f"generating {opts.problems.train} training and {opts.problems.held_out} held-out "
                               f"problems (seed {opts.problems.seed}); {TRACE_SOURCE}"})
    problems = generate(opts.problems)
    atomic_write_json(data / "problems.json", {"train": problems_to_dicts(problems.train),
                                               "held_out": problems_to_dicts(problems.held_out)})
    questions = write_questions(problems.held_out, data / "held_out.jsonl")
    setup = dataclasses.replace(opts.setup, questions=questions)
    prepare_questions(setup)
    setup = dataclasses.replace(setup, model_spec=prepare_model(setup, callback))
    from mlxsft.curate.scan import token_counter

    count_tokens, _ = token_counter(setup.model_spec or setup.model)  # the student's tokenizer, no weights
    budget_tokens = answer_budget(problems.held_out, count_tokens)
    max_tokens = opts.max_tokens or budget_tokens
    setup = dataclasses.replace(setup, max_tokens=max_tokens)
    files = {"answer": write_rows(problems.train, data / "answer.jsonl", with_trace=False),
             "trace": write_rows(problems.train, data / "trace.jsonl", with_trace=True)}
    for path in files.values():
        check_held_out(path, held_out_prompts(setup))

    results: list[ArmResult] = []
    scores: list[ArmScore] = []
    base_memo: dict = {}
    total = len(ARMS) * len(setup.seeds)
    for seed in setup.seeds:
        for name in ARMS:
            arm = Arm(name, files[name], description=ARM_TEXT[name])
            callback("arm_start", {"arm": name, "seed": seed, "index": len(results) + 1, "total": total})
            result, cached = run_arm(setup, arm, seed, callback, base_memo)
            results.append(result)
            scores.append(score_arm(result))
            # the arm's line shows the trace-stripped score, not the before/after table's raw one
            callback("arm_done", {"result": result, "cached": cached,
                                  "scored": {"right": scores[-1].right, "right_base": scores[-1].right_base,
                                             "cut_off": scores[-1].cut_off}})
    budget = check_equal_budget(results)
    summary = aggregate(results, METRICS)
    for name, m in summary.items():
        mine = [s for r, s in zip(results, scores) if r.arm == name]
        for metric in SCORED:
            m[metric] = spread(getattr(s, metric) for s in mine)
        for kind in KINDS:
            m[f"right_{kind}"] = spread(s.by_kind[kind] for s in mine)
    payload = {"experiment": "reasoning", "setup": _setup_dict(setup), "problems": asdict(opts.problems),
               "trace_source": TRACE_SOURCE, "max_tokens": max_tokens, "trace_budget_tokens": budget_tokens,
               "held_out_by_kind": {k: sum(p.kind == k for p in problems.held_out) for k in KINDS},
               "budget": budget,
               "summary": {a: {m: s.to_dict() for m, s in ms.items()} for a, ms in summary.items()},
               "arms": [r.to_dict() | {"scored": asdict(s)} for r, s in zip(results, scores)], "machine": machine()}
    write_results(out, payload)
    write_table(out, reasoning_table(payload, summary))
    plot(out, payload, summary)
    callback("done", {"out": str(out)})
    return payload


def reasoning_table(payload: dict[str, Any], summary: dict[str, dict[str, Spread]]) -> str:
    from mlxsft.experiments.outputs import budget_text, markdown_table

    s, b = payload["setup"], payload["budget"]
    n_q = payload["arms"][0]["scored"]["questions"]
    lines = ["# Reasoning traces teach reasoning? (`mlxsft experiment reasoning`)\n",
             f"{s['model']} ({s['backend']} backend), LoRA, {payload['problems']['train']} generated two-step "
             f"problems; {budget_text(s, b)}; scored on {n_q} held-out problems of the same kinds (greedy, at "
             f"most {payload['max_tokens']} new tokens; the longest reference trace needs at most "
             f"{payload['trace_budget_tokens']}). The scored answer is what follows `</think>`; an answer cut "
             f"off inside its trace counts as wrong. Note: {payload['trace_source']}. Mean ± sd over seeds.\n"]
    rows = []
    for arm, m in summary.items():
        rows.append([f"{arm} ({ARM_TEXT.get(arm, '')})", f"{m['right'].text(1)} / {n_q}",
                     *[m[f"right_{k}"].text(1) for k in KINDS], m["traced"].text(1), m["steps_right"].text(1),
                     m["cut_off"].text(1), m["rows_seen"].text(0), m["train_loss"].text(3),
                     m["trained_tokens"].text(0), m["s_per_step"].text(2)])
    by_kind = payload["held_out_by_kind"]
    lines.append(markdown_table(["arm", "held-out right", *[f"{k} (of {by_kind[k]})" for k in KINDS],
                                 "wrote a trace", "trace steps all right", "cut off in the trace", "rows seen",
                                 "final train loss", "trained tokens", "s / step"], rows))
    first = summary[next(iter(summary))]
    lines.append(f"\nThe base model answers {first['right_base'].text(0)} / {n_q} right (scored the same way). "
                 f"Rows seen: training problems the packed tokens cover (a trace row is longer, so the trace arm "
                 f"sees fewer problems at the same tokens).\n")
    return "\n".join(lines)


def plot(out: Path, payload: dict[str, Any], summary: dict[str, dict[str, Spread]]) -> None:
    from mlxsft.experiments.outputs import bar_panels

    arms = list(summary)
    n_q = payload["arms"][0]["scored"]["questions"]
    by_kind = payload["held_out_by_kind"]
    bar_panels(out / "reasoning.png", arms,
               [(f"held-out right (of {n_q})", "problems", [summary[a]["right"] for a in arms]),
                *[(f"{k} (of {by_kind[k]})", "problems", [summary[a][f"right_{k}"] for a in arms]) for k in KINDS],
                ("cut off in the trace", "answers", [summary[a]["cut_off"] for a in arms])],
               title=f"Answer alone vs worked trace at {payload['budget']['steps']} steps (mean ± sd over seeds)")
