"""The run page: a summary of each run, then its curves, its data, its before/after questions and its setup.

    run_sections(runs)     # HTML sections; several runs share the charts (one colour each) and get a row each
"""

from __future__ import annotations

from statistics import median
from typing import Any, Optional

from mlxsft.learned import learned_totals
from mlxsft.report.curves import curves_section
from mlxsft.report.data_view import data_section
from mlxsft.report.html import Raw, cards, esc, section, table
from mlxsft.report.questions import questions_section
from mlxsft.report.setup_view import peak_gb, setup_section
from mlxsft.report.sources import RunView


def run_sections(runs: list[RunView]) -> str:
    return "".join([_summary(runs), curves_section(runs), questions_section(runs), data_section(runs),
                    setup_section(runs)])


def subtitle(runs: list[RunView]) -> str:
    if len(runs) == 1:
        r = runs[0]
        return f"{r.method} on {r.base_model} · {r.backend} · {r.path}"
    return f"{len(runs)} runs: " + ", ".join(r.label for r in runs)


def _figures(run: RunView) -> dict[str, Any]:
    train, val = run.train_rows, run.val_rows
    last = train[-1] if train else {}
    speeds = [r["tokens_per_sec"] for r in train if r.get("tokens_per_sec")]
    best = min((r["val_loss"] for r in val), default=None)
    totals = learned_totals(run.compare) if run.compare is not None else None
    step = max(last.get("step") or 0, run.checkpoint_step or 0)  # Ctrl-C checkpoints past the last report
    return {"steps": f"{step}/{last.get('total_steps', '?')}" if last else "—",
            "stopped": bool(last) and last.get("total_steps") not in (None, step),
            "train_loss": last.get("train_loss"), "first_loss": train[0]["train_loss"] if train else None,
            "best_val": best, "tokens": last.get("trained_tokens"), "speed": median(speeds) if speeds else None,
            "peak": peak_gb(run), "elapsed": last.get("elapsed_s"), "totals": totals,
            "kl": run.compare.forgetting.kl if run.compare is not None and run.compare.forgetting else None}


def _num(v: Optional[float], fmt: str) -> str:
    return format(v, fmt) if v is not None else "—"


def _summary(runs: list[RunView]) -> str:
    if len(runs) == 1:
        f = _figures(runs[0])
        t = f["totals"]
        items = [("steps", f["steps"], "stopped before the end" if f["stopped"] else "done"),
                 ("train loss", _num(f["train_loss"], ".3f"), f"from {_num(f['first_loss'], '.3f')} at the start"),
                 ("best validation loss", _num(f["best_val"], ".3f"),
                  "" if f["best_val"] is not None else "none measured"),
                 ("trained tokens", _num(f["tokens"], ","), f"{_num(f['elapsed'], '.0f')} s wall time"),
                 ("throughput", _num(f["speed"], ".0f"), "tokens/s, median"),
                 ("peak memory", _num(f["peak"], ".2f"), "GB")]
        if t is not None:
            items.append(("learned", f"{t['wins'] - t['regressions']:+d}",
                          f"{t['right_before']} → {t['right_after']} right of {t['questions']}"))
        if f["kl"] is not None:
            items.append(("forgetting", f"{f['kl']:.2f}", "KL nats/token"))
        return section("Summary", cards(items), "summary")
    rows = []
    for run in runs:
        f = _figures(run)
        t = f["totals"]
        rows.append([Raw(f'<i class="run-dot" style="background:{run.color}"></i>{esc(run.name)}'), run.method,
                     run.backend, f["steps"], _num(f["train_loss"], ".3f"), _num(f["best_val"], ".3f"),
                     _num(f["tokens"], ","), _num(f["speed"], ".0f"), _num(f["peak"], ".2f"),
                     f"{t['right_before']} → {t['right_after']} / {t['questions']}" if t else "—",
                     f"{t['wins']} / {t['regressions']}" if t else "—", _num(f["kl"], ".3f")])
    head = ["run", "method", "backend", "steps", "train loss", "best val loss", "tokens", "tokens/s", "peak GB",
            "right base → tuned", "wins / regressions", "forgetting KL"]
    return section("Summary", table(head, rows, numeric=range(3, 12), css="summary"), "summary")
