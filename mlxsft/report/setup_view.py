"""The report's setup section: the memory plan against the measured peak, backend, device, versions, the
commands that go on from this run, and the resolved config (``config.yaml``).

    setup_section(runs)
"""

from __future__ import annotations

import shlex
from typing import Any

from mlxsft.report.html import Raw, esc, key_values, missing, per_run, section
from mlxsft.report.sources import RunView
from mlxsft.report.svg import StackedBar, stacked_bars

PLAN_PARTS = (("weights_gb", "weights", "#4e79a7"), ("trainable_gb", "trainable + grads + optimizer", "#f28e2b"),
              ("activations_gb", "activations", "#59a14f"), ("logits_gb", "logits", "#b07aa1"),
              ("runtime_gb", "runtime", "#9c755f"))
MEASURED = "#e15759"


def setup_section(runs: list[RunView]) -> str:
    return section("Setup, memory and what to run next", per_run(runs, _run_setup), "setup")


def peak_gb(run: RunView) -> float | None:
    peaks = [float(r["peak_memory_gb"]) for r in run.metrics if r.get("peak_memory_gb") is not None]
    return max(peaks) if peaks else None


def _run_setup(run: RunView) -> str:
    left = "<h4>Run</h4>" + key_values(_facts(run)) + "<h4>Memory: planned against measured</h4>" + _memory(run)
    right = "<h4>Commands for this run</h4>" + _commands(run) + "<h4>Versions</h4>" + _versions(run)
    return f'<div class="grid2"><div>{left}</div><div>{right}</div></div>' + _config(run)


def _facts(run: RunView) -> list[tuple[str, Any]]:
    s = run.setup or {}
    last = run.train_rows[-1] if run.train_rows else {}
    step = max(last.get("step") or 0, run.checkpoint_step or 0) if last else 0
    steps = f"{step} of {last.get('total_steps', '?')}" if last else "none logged"
    if run.checkpoint_step is not None:
        steps += f" (last checkpoint: step {run.checkpoint_step})"
    params = s.get("parameters") or {}
    rows = [("run folder", str(run.path)), ("base model", run.base_model), ("method", run.method),
            ("backend", run.backend), ("device", s.get("device", "not recorded")),
            ("steps", steps), ("epochs", f"{last.get('epoch', 0):g}" if last else "—"),
            ("trained tokens", f"{last.get('trained_tokens', 0):,}" if last else "—"),
            ("wall time", f"{last.get('elapsed_s', 0):.0f} s" if last else "—")]
    if params:
        share = params["trainable"] / params["total"] if params.get("total") else 0
        rows.append(("parameters", f"{params['trainable']:,} trainable of {params['total']:,} ({share:.2%})"))
    if s.get("processes", 1) > 1:
        rows.append(("processes", s["processes"]))
    if not run.has_weights:
        rows.append(("tuned weights", "none yet: the run is still going, or stopped before its first checkpoint"))
    return rows


def _memory(run: RunView) -> str:
    peak = peak_gb(run)
    plan = (run.setup or {}).get("memory_plan")
    bars = []
    if plan:
        bars.append(StackedBar("planned", [(label, float(plan.get(k) or 0.0), colour) for k, label, colour in PLAN_PARTS
                                           if plan.get(k)], run=run.ident))
    if peak is not None:
        bars.append(StackedBar("measured peak", [("measured peak", peak, MEASURED)], run=run.ident))
    chart = stacked_bars(f"memory-plan-{run.ident}", bars, x_label="GB") if bars else ""
    legend = "".join(f'<span><i class="swatch" style="border-color:{c};border-top-width:8px"></i>{esc(label)}</span>'
                     for k, label, c in PLAN_PARTS if plan and plan.get(k))
    note = ""
    if plan and peak is not None:
        total = float(plan.get("total_gb") or 0)
        note = f'<p class="note">planned {total:.2f} GB, measured peak {peak:.2f} GB ' \
               f'({peak / total:.0%} of the plan)</p>' if total else ""
    elif peak is not None:
        note = missing("no setup.json: the memory plan was not recorded (a run from before the report); "
                       "`mlxsft train --plan` with the run's flags prints it")
    machine = (run.setup or {}).get("machine_memory_gb")
    if machine:
        note += f'<p class="note">the device has {machine:.1f} GB</p>'
    return (f'<div class="legend">{legend}</div>' if legend else "") + chart + note


def _commands(run: RunView) -> str:
    q = shlex.quote(str(run.path))
    name = shlex.quote(run.name)
    rows = [("resume", f"mlxsft train --resume {q}"),
            ("chat beside the base", f"mlxsft chat --adapter {q} --compare"),
            ("before/after questions", f"mlxsft eval --adapter {q} --compare"),
            ("export for llama.cpp / Ollama", f"mlxsft export --run {q} --format gguf --out exports/{name}-gguf"),
            ("export for transformers", f"mlxsft export --run {q} --format hf --out exports/{name}-hf"),
            ("this page again", f"mlxsft report {q}")]
    return key_values([(k, Raw(f"<code>{esc(v)}</code>")) for k, v in rows], css="kv commands")


def _versions(run: RunView) -> str:
    s = run.setup or {}
    if not s.get("versions"):
        return missing("no setup.json: versions not recorded")
    rows = [(k, v) for k, v in s["versions"].items() if v]
    m = s.get("machine") or {}
    rows += [("python", m.get("python")), ("system", m.get("system")), ("cores", m.get("cores"))]
    return key_values([(k, v) for k, v in rows if v is not None])


def _config(run: RunView) -> str:
    if run.config is None:
        return missing("no config.yaml")
    tables = "".join(f"<div><h4>{esc(name)}</h4>{key_values((k, _value(v)) for k, v in values.items())}</div>"
                     for name, values in run.config.to_dict().items())
    return (f"<details><summary>Resolved config (config.yaml)</summary>"
            f'<div class="grid3">{tables}</div></details>')


def _value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "[]"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {x}" for k, x in v.items()) or "{}"
    return str(v)
