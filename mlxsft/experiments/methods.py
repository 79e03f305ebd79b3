"""``mlxsft experiment methods``: does LoRA learn less and forget less than full fine-tuning?

    results = run_methods(MethodsOptions(Setup(out=Path("runs/experiments/methods"))), callback)

The same rows (the bundled training split, or ``--data``), the same optimizer steps and packed tokens, three
methods: LoRA at rank 8 and at rank 64, and full fine-tuning (every transformer weight; the embeddings stay
frozen, as ``configs/full.yaml`` has them). Each arm is scored by the before/after table of ``mlxsft train``:

- learned: the held-out gain, questions the tuned model answers right minus those the base model answers right,
  with its wins (wrong -> right) and regressions (right -> wrong);
- forgot: KL(base || tuned) per token on the base model's own greedy answers to general prompts, and the NLL of
  those answers under the tuned model (the base model's own NLL is the floor it rises from);
- cost: trainable parameters, the peak memory of the arm and seconds per optimizer step.

Learning rates, per method (``METHOD_LR``): LoRA at 1e-3, the demo's default (``alpha`` 16 at both ranks: with
the alpha / rank scaling the update of a fresh adapter does not grow with the rank, so one rate suits both),
full fine-tuning at 1e-4, a tenth of it: a full update moves every weight at once, and the learning rate that
is best for LoRA is commonly ~10x the best one for full fine-tuning (Schulman et al., "LoRA Without Regret",
2025). ``--lora-lr`` / ``--full-lr`` change them; ``--set learning_rate=X`` gives every arm the same rate.

Peak memory on a CPU is the process's peak resident memory (``ru_maxrss``), which only ever grows; on Linux it
is reset before each arm (``/proc/self/clear_refs``), so each arm reports its own peak, not an earlier arm's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from mlxsft.experiments.arms import Arm, ArmResult, Setup, aggregate, check_equal_budget, held_out_prompts, \
    prepare_model, prepare_questions, run_arm
from mlxsft.experiments.events import Callback, silent
from mlxsft.experiments.stats import Spread, spread

DEFAULT_RANKS = (8, 64)
METHOD_LR = {"lora": 1e-3, "full": 1e-4}
METRICS = ("right", "right_base", "wins", "regressions", "kl", "tuned_nll", "base_nll", "stop_rate", "train_loss",
           "steps", "trained_tokens", "rows", "s_per_step", "peak_memory_gb", "trainable_params", "train_s",
           "total_s")


@dataclass
class MethodsOptions:
    setup: Setup
    data: Optional[Path] = None  # training rows (default: the bundled training split)
    ranks: tuple[int, ...] = DEFAULT_RANKS
    lora_lr: float = METHOD_LR["lora"]
    full_lr: float = METHOD_LR["full"]


def method_arms(opts: MethodsOptions, data: Path) -> list[Arm]:
    """One arm per LoRA rank, then full fine-tuning; a field the user set for every arm (``--set``) wins over
    the method's own default."""
    shared = opts.setup.overrides

    def own(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k not in shared}

    arms = [Arm(f"lora-r{r}", data, own({"method": "lora", "rank": r, "learning_rate": opts.lora_lr}),
                f"LoRA rank {r}, lr {shared.get('learning_rate', opts.lora_lr):g}") for r in opts.ranks]
    arms.append(Arm("full", data, own({"method": "full", "learning_rate": opts.full_lr}),
                    f"full fine-tuning, lr {shared.get('learning_rate', opts.full_lr):g}"))
    return arms


def reset_peak_memory() -> None:
    """Start the process's peak resident memory afresh (Linux: ``clear_refs`` 5 resets ``ru_maxrss`` to the
    resident memory now); elsewhere the peak stays the process's, an upper bound for the arm."""
    import gc

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def check_rows_held_out(data: Path, held_out: set[str]) -> None:
    from mlxsft.experiments.curation import check_held_out

    check_held_out(data, held_out)


def run_methods(opts: MethodsOptions, callback: Callback = silent) -> dict[str, Any]:
    from mlxsft.data.bundled_paths import bundled_path
    from mlxsft.experiments.curation import _setup_dict, machine
    from mlxsft.experiments.outputs import write_results, write_table

    setup = opts.setup
    data = Path(opts.data) if opts.data else bundled_path("train")
    if not data.is_file():
        from mlxsft.errors import ConfigError

        raise ConfigError(f"--data {data}: no such file")
    setup.out.mkdir(parents=True, exist_ok=True)
    prepare_questions(setup)
    setup = dataclasses.replace(setup, model_spec=prepare_model(setup, callback))
    check_rows_held_out(data, held_out_prompts(setup))
    arms = method_arms(opts, data)

    results: list[ArmResult] = []
    base_memo: dict = {}  # the base model answers the held-out and general prompts once, not once per arm
    total = len(arms) * len(setup.seeds)
    for seed in setup.seeds:
        for arm in arms:
            callback("arm_start", {"arm": arm.name, "seed": seed, "index": len(results) + 1, "total": total})
            reset_peak_memory()
            result, cached = run_arm(setup, arm, seed, callback, base_memo)
            results.append(result)
            callback("arm_done", {"result": result, "cached": cached})
    budget = check_equal_budget(results)
    summary = aggregate(results, METRICS)
    for name, m in summary.items():
        m["gain"] = spread(r.right - r.right_base for r in results if r.arm == name)
    payload = {"experiment": "methods", "setup": _setup_dict(setup), "data": str(data),
               "methods": {a.name: {"description": a.description, "overrides": a.overrides} for a in arms},
               "learning_rates": {"lora": opts.lora_lr, "full": opts.full_lr,
                                  "every_arm": setup.overrides.get("learning_rate")},
               "budget": budget,
               "summary": {a: {m: s.to_dict() for m, s in ms.items()} for a, ms in summary.items()},
               "arms": [r.to_dict() for r in results], "machine": machine()}
    write_results(setup.out, payload)
    write_table(setup.out, methods_table(payload, summary))
    plot(setup.out, payload, summary)
    callback("done", {"out": str(setup.out)})
    return payload


def methods_table(payload: dict[str, Any], summary: dict[str, dict[str, Spread]]) -> str:
    """table.md: one row per method, mean ± sd over seeds."""
    from mlxsft.experiments.outputs import budget_text, markdown_table

    s, b = payload["setup"], payload["budget"]
    n_q = payload["arms"][0]["questions"]
    lines = ["# LoRA learns less and forgets less? (`mlxsft experiment methods`)\n",
             f"{s['model']} ({s['backend']} backend) on {Path(payload['data']).name}, {budget_text(s, b)}; scored on {n_q} held-out "
             f"questions (greedy, at most {s['max_tokens']} new tokens) and {s['n_general'] or 'all'} general "
             f"prompts for forgetting. Mean ± sd over seeds.\n"]
    rows = []
    for arm, m in summary.items():
        rows.append([f"{arm} ({payload['methods'][arm]['description']})", f"{m['gain'].text(1)}",
                     f"{m['right'].text(1)} / {n_q}", m["wins"].text(1), m["regressions"].text(1),
                     m["kl"].text(3), m["tuned_nll"].text(3), m["train_loss"].text(3),
                     f"{m['trainable_params'].text(0)}", m["peak_memory_gb"].text(2), m["s_per_step"].text(2)])
    lines.append(markdown_table(["method", "learned (gain)", "held-out right", "wins", "regressions",
                                 "forgot: KL", "forgot: NLL of base answers", "final train loss",
                                 "trainable params", "peak GB", "s / step"], rows))
    first = summary[next(iter(summary))]
    lines.append(f"\nlearned: held-out questions the tuned model answers right minus the base model's "
                 f"({first['right_base'].text(0)} / {n_q}); wins wrong -> right, regressions right -> wrong. "
                 f"forgot: KL(base || tuned) in nats per token on the base model's greedy answers to general "
                 f"prompts, and their NLL per token under the tuned model (under the base model itself: "
                 f"{first['base_nll'].text(3)}). Peak GB: the arm's peak resident memory on a CPU (reset before "
                 f"each arm on Linux), the accelerator's peak otherwise. Learning rates: LoRA "
                 f"{payload['learning_rates']['lora']:g}, full {payload['learning_rates']['full']:g}"
                 + (f", overridden for every arm by --set learning_rate={payload['learning_rates']['every_arm']:g}"
                    if payload["learning_rates"]["every_arm"] is not None else "") + ".\n")
    return "\n".join(lines)


def plot(out: Path, payload: dict[str, Any], summary: dict[str, dict[str, Spread]]) -> None:
    from mlxsft.experiments.outputs import bar_panels, scatter_points

    arms = list(summary)
    scatter_points(out / "methods.png", arms, [summary[a]["kl"] for a in arms], [summary[a]["gain"] for a in arms],
                   xlabel="forgot: KL(base || tuned), nats/token", ylabel="learned: held-out gain (questions)",
                   title=f"Learned vs forgot at {payload['budget']['steps']} steps (mean ± sd over seeds)")
    bar_panels(out / "methods-cost.png", arms,
               [("trainable parameters", "parameters", [summary[a]["trainable_params"] for a in arms]),
                ("peak memory", "GB", [summary[a]["peak_memory_gb"] for a in arms]),
                ("time per step", "seconds", [summary[a]["s_per_step"] for a in arms])],
               title="What each method costs")
