"""``mlxsft experiment curation``: does a curated N beat N random rows, and the whole pool, at equal compute?

    results = run_curation(CurationOptions(Setup(out=Path("runs/experiments/curation"))), callback)

1. A mixed pool, four times the bundled training set, with defects planted at known rates (``pool.py``), or
   with ``--data`` the user's rows plus defective variants of them (``pool_from_data.py``); the held-out
   questions are never in it (checked).
2. Curated to N rows with mlxsft's own pipeline: ``data filter`` (quality, exact and near dedup), best-of-k with
   the reference scorer where a row has a reference, then ``data filter --select N`` (``curate_pool.py``); the
   filter report scores each step against the planted labels (precision, recall, what got through).
3. Three arms, each at every seed, at the same optimizer steps and (packed) tokens: ``curated`` (the N curated
   rows), ``random`` (N rows drawn at random from the pool, a new draw per seed) and ``pool`` (all of it). Each
   is scored on the held-out questions (right answers, wins and regressions against the base) and on the
   forgetting score; ``check_equal_budget`` asserts the budget from the runs' metrics.
4. ``OUT/results.json``, ``OUT/table.md``, ``OUT/curation.png`` (held-out right and forgetting per arm) and
   ``OUT/filter.png`` (where each planted defect went).
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from mlxsft.errors import RunError
from mlxsft.experiments.arms import Arm, ArmResult, Setup, aggregate, check_equal_budget, held_out_prompts, \
    prepare_model, prepare_questions, run_arm
from mlxsft.experiments.curate_pool import CurationSpec, curate, filter_report
from mlxsft.experiments.events import Callback, silent
from mlxsft.experiments.pool import LABELS, PoolSpec, build_pool

ARMS = ("curated", "random", "pool")
ARM_TEXT = {"curated": "the N curated rows", "random": "N rows drawn at random from the pool",
            "pool": "the whole pool"}
METRICS = ("right", "right_base", "wins", "regressions", "kl", "tuned_nll", "stop_rate", "train_loss", "steps",
           "trained_tokens", "rows", "s_per_step", "peak_memory_gb", "trainable_params", "train_s", "total_s")


@dataclass
class CurationOptions:
    setup: Setup
    pool: PoolSpec = field(default_factory=PoolSpec)
    select: int = 300  # N: as many rows as the bundled training set
    data: Optional[Path] = None  # build the pool from this dataset's rows (``pool_from_data``), not the bundled
    scorer: str = "reference:exact"
    embedder: str = "auto"


def random_rows(pool: Path, n: int, seed: int, out: Path) -> Path:
    """N rows of ``pool`` drawn at random (in pool order), for the ``random`` arm at ``seed``."""
    from mlxsft.files import atomic_write_bytes

    lines = [raw for raw in pool.read_bytes().splitlines(keepends=True) if raw.strip()]
    chosen = sorted(random.Random(seed).sample(range(len(lines)), min(n, len(lines))))
    atomic_write_bytes(out, b"".join(lines[i] for i in chosen))
    return out


def check_held_out(pool: Path, held_out: set[str]) -> None:
    """No pool row (so no arm's row) asks a held-out question."""
    with open(pool, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            row = json.loads(line)
            if any(m["role"] == "user" and m["content"] in held_out for m in row["messages"]):
                raise RunError(f"{pool}:{line_no}: asks a held-out question; it would not be held out")


def run_curation(opts: CurationOptions, callback: Callback = silent) -> dict[str, Any]:
    setup = opts.setup
    out = setup.out
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    data.mkdir(exist_ok=True)
    from mlxsft.files import atomic_write_json

    callback("stage", {"text": f"building the mixed pool from {opts.data or 'the bundled dataset'}"})
    if opts.data is not None:
        from mlxsft.experiments.pool_from_data import pool_from_data

        pool = pool_from_data(opts.data, opts.pool)
    else:
        pool = build_pool(opts.pool)
    pool_path = pool.write(data / "pool.jsonl")
    atomic_write_json(data / "pool.labels.json", pool.labels)
    prepare_questions(setup)
    setup = dataclasses.replace(setup, model_spec=prepare_model(setup, callback))
    check_held_out(pool_path, held_out_prompts(setup))

    callback("stage", {"text": f"curating {len(pool.rows)} rows to {opts.select}"})
    spec = CurationSpec(select=opts.select, scorer=opts.scorer, embedder=opts.embedder, seed=opts.pool.seed)
    run = curate(pool_path, out / "curation", spec)
    report = filter_report(pool.labels, run.removed, run.kept)

    results: list[ArmResult] = []
    base_memo: dict = {}  # the base model answers the held-out and general prompts once, not once per arm
    total = len(ARMS) * len(setup.seeds)
    for seed in setup.seeds:
        arms = {"curated": run.curated, "random": random_rows(pool_path, opts.select, seed,
                                                              data / f"random-seed{seed}.jsonl"),
                "pool": pool_path}
        for name in ARMS:
            arm = Arm(name, arms[name], description=ARM_TEXT[name])
            callback("arm_start", {"arm": name, "seed": seed, "index": len(results) + 1, "total": total})
            result, cached = run_arm(setup, arm, seed, callback, base_memo)
            results.append(result)
            callback("arm_done", {"result": result, "cached": cached})
    budget = check_equal_budget(results)
    summary = aggregate(results, METRICS)
    payload = {"experiment": "curation", "setup": _setup_dict(setup),
               "pool": asdict(opts.pool), "data": str(opts.data) if opts.data else None,
               "pool_rows": len(pool.rows), "select": opts.select, "scorer": opts.scorer,
               "embedder": next((r.get("embedder") for r in run.filter_reports if r.get("embedder")), None),
               "budget": budget, "filter_report": report,
               "summary": {a: {m: s.to_dict() for m, s in ms.items()} for a, ms in summary.items()},
               "arms": [r.to_dict() for r in results], "machine": machine()}
    from mlxsft.experiments.outputs import write_results, write_table

    write_results(out, payload)
    write_table(out, curation_table(payload, summary))
    plots(out, payload, summary)
    callback("done", {"out": str(out)})
    return payload


def _setup_dict(setup: Setup) -> dict[str, Any]:
    from mlxsft.backends.registry import resolve

    d = asdict(setup)
    d["backend"] = resolve(setup.backend)  # what ran ("auto" says nothing in a table)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def machine() -> dict[str, Any]:
    """CPU, cores and load average: timings here are only comparable on a machine like this one."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.system(), "load_average": load}


def curation_table(payload: dict[str, Any], summary: dict[str, dict[str, Any]]) -> str:
    """table.md: the arms (mean ± sd over seeds), then the filter report."""
    from mlxsft.experiments.outputs import budget_text, markdown_table

    s, b, rep = payload["setup"], payload["budget"], payload["filter_report"]
    n_q = payload["arms"][0]["questions"]
    lines = ["# Curation beats volume? (`mlxsft experiment curation`)\n\n",
             f"{s['model']} ({s['backend']} backend), LoRA, {budget_text(s, b)}; pool of {payload['pool_rows']} rows"
             f"{' built from ' + Path(payload['data']).name if payload.get('data') else ''}, curated to "
             f"N = {payload['select']}; scored on {n_q} held-out questions (greedy, at most {s['max_tokens']} "
             f"new tokens) and {s['n_general'] or 'all'} general prompts for forgetting. Mean ± sd over seeds.\n\n"]
    rows = []
    for arm, m in summary.items():
        rows.append([f"{arm} ({ARM_TEXT.get(arm, '')})", m["rows"].text(0, sd=False), f"{m['right'].text(1)} / {n_q}",
                     m["wins"].text(1), m["regressions"].text(1), m["kl"].text(3),
                     _pct(m["stop_rate"]), m["train_loss"].text(3), m["trained_tokens"].text(0),
                     m["s_per_step"].text(2), m["peak_memory_gb"].text(2), m["trainable_params"].text(0, sd=False)])
    base = summary[next(iter(summary))]["right_base"].text(0)
    lines.append(markdown_table(["arm", "rows", "held-out right", "wins", "regressions", "forgetting KL",
                                 "stops", "final train loss", "trained tokens", "s / step", "peak GB",
                                 "trainable params"], rows))
    lines.append(f"\nThe base model answers {base} / {n_q} right. Forgetting KL: KL(base || tuned) in nats per "
                 f"token on the base model's answers to general prompts; stops: tuned answers that ended at the "
                 f"end of turn.\n")
    lines.append("\n## Filter report: what each curation step removed, per planted label\n\n")
    header = ["step", "removed", *LABELS, "precision"]
    step_rows = [[step, v["removed"], *[v["by_label"][label] for label in LABELS], _pct(v["precision"])]
                 for step, v in rep["steps"].items()]
    step_rows.append(["**kept (curated N)**", rep["rows_out"], *[rep["kept"][label] for label in LABELS], ""])
    step_rows.append(["planted in the pool", rep["rows_in"], *[rep["planted"][label] for label in LABELS], ""])
    lines.append(markdown_table(header, step_rows))
    lines.append("\n" + markdown_table(
        ["defect", "planted", "removed", "recall", "recall before selection", "in the curated N"],
        [[d, v["planted"], v["removed"], _pct(v["recall"]), _pct(v["filter_recall"]), v["kept"]]
         for d, v in rep["defects"].items()]))
    f, o = rep["filters"], rep["overall"]
    lines.append(f"\nThe filtering steps (before the selection) removed {f['removed']} rows with precision "
                 f"{_pct(f['precision'])} and recall {_pct(f['recall'])} of the planted defects; with the "
                 f"selection to N, recall {_pct(o['recall'])}. Defective rows in the curated N: "
                 f"{_pct(rep['kept_defective'])}.\n")
    return "".join(lines)


def _pct(x: Any) -> str:
    if hasattr(x, "mean"):
        return "—" if x.mean is None else (f"{x.mean:.0%}" if x.sd is None else f"{x.mean:.0%} ± {x.sd:.0%}")
    return "—" if x is None else f"{x:.0%}"


def plots(out: Path, payload: dict[str, Any], summary: dict[str, dict[str, Any]]) -> None:
    from mlxsft.experiments.outputs import bar_panels, stacked_bars

    arms = list(summary)
    n_q = payload["arms"][0]["questions"]
    bar_panels(out / "curation.png", arms,
               [(f"held-out right (of {n_q})", "questions", [summary[a]["right"] for a in arms]),
                ("forgetting", "KL(base || tuned), nats/token", [summary[a]["kl"] for a in arms])],
               title=f"Curation vs volume at {payload['budget']['steps']} steps (mean ± sd over seeds)")
    rep = payload["filter_report"]
    stacks = {step: [rep["steps"][step]["by_label"][label] for label in LABELS] for step in rep["steps"]}
    stacks["kept in the curated N"] = [rep["kept"][label] for label in LABELS]
    stacked_bars(out / "filter.png", list(LABELS), stacks, title="Where each planted label went",
                 xlabel="rows of the pool")
