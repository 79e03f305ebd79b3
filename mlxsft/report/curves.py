"""The report's training curves: loss against steps and tokens, learning rate, grad norm, tokens/s, peak memory.

    curves_section(runs)      # one chart per metric, every run overlaid (colour: run, dashes: validation)

Read from ``metrics.jsonl`` rows (``RunView.train_rows`` / ``val_rows``): train rows are report windows
(``train_loss`` is the mean since the last report), validation rows carry ``val_loss``. Each chart says what it
lacks instead of drawing nothing silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from mlxsft.report.html import esc, section
from mlxsft.report.sources import RunView
from mlxsft.report.svg import MAX_BUCKETS, PALETTE, SMOOTH_FROM, Axis, Series, fmt_num, line_chart

LOSS = "loss (nats/token)"


@dataclass(frozen=True)
class Curve:
    chart_id: str
    title: str
    x_key: str  # metrics field on the x axis
    x_label: str
    y_key: str
    y_label: str
    zero: bool = False
    validation: bool = False  # also draw val_loss
    smooth: bool = False  # noisy per step: a long run shows its moving average over the faint raw curve


CURVES = (
    Curve("loss-step", "Loss against steps", "step", "step", "train_loss", LOSS, validation=True, smooth=True),
    Curve("loss-tokens", "Loss against tokens", "trained_tokens", "trained tokens", "train_loss", LOSS,
          validation=True, smooth=True),
    Curve("learning-rate", "Learning rate", "step", "step", "learning_rate", "learning rate", zero=True),
    Curve("grad-norm", "Gradient norm", "step", "step", "grad_norm", "gradient L2 norm (before clipping)",
          zero=True, smooth=True),
    Curve("throughput", "Throughput", "step", "step", "tokens_per_sec", "tokens / s", zero=True, smooth=True),
    Curve("memory", "Peak memory", "step", "step", "peak_memory_gb", "peak memory (GB)", zero=True),
)


def _points(rows: list[dict[str, Any]], x: str, y: str) -> list[tuple[float, float]]:
    """(x, y) of the rows that have both, finite (a skipped non-finite step logs NaN)."""
    pts = [(r.get(x), r.get(y)) for r in rows]
    return [(float(a), float(b)) for a, b in pts if isinstance(a, (int, float)) and isinstance(b, (int, float))
            and math.isfinite(a) and math.isfinite(b)]


def _series(curve: Curve, runs: list[RunView]) -> list[Series]:
    out = []
    single = len(runs) == 1
    hover = "{label}, " + curve.x_label + " {x}: {y}"
    for run in runs:
        name = "train" if single else f"{run.label} train"
        out.append(Series(run.ident, name, _points(run.train_rows, curve.x_key, curve.y_key), run.color, hover=hover,
                          smooth=curve.smooth))
        if curve.validation:
            name = "validation" if single else f"{run.label} validation"
            colour = PALETTE[1] if single else run.color
            out.append(Series(run.ident, name, _points(run.val_rows, curve.x_key, "val_loss"), colour, dashed=True,
                              markers=True, hover=hover))
    return out


def _hlines(curve: Curve, runs: list[RunView]) -> list[tuple[float, str]]:
    """The memory plan on the memory chart, the clipping threshold on the grad-norm chart; one line per value."""
    by_value: dict[float, list[str]] = {}
    for run in runs:
        plan = (run.setup or {}).get("memory_plan") or {}
        if curve.chart_id == "memory" and plan.get("total_gb"):
            by_value.setdefault(round(float(plan["total_gb"]), 2), []).append(run.name)
        if curve.chart_id == "grad-norm" and run.config is not None and run.config.optim.max_grad_norm:
            by_value.setdefault(float(run.config.optim.max_grad_norm), []).append(run.name)
    what = "planned {:.2f} GB" if curve.chart_id == "memory" else "clipped at {:g}"
    return [(v, what.format(v) + ("" if len(names) == len(runs) else f" ({', '.join(names)})"))
            for v, names in by_value.items()]


def legend(series: list[Series], runs: list[RunView]) -> str:
    """One run: a key per series. Several: the line styles only (the runs' colours are keyed above the charts)."""
    if len(runs) == 1:
        keys = [(s.label, s.color, s.dashed) for s in series if s.points]
    else:
        keys = [(name, "#57606a", dashed) for name, dashed in (("train", False), ("validation", True))
                if any(s.points and s.dashed == dashed for s in series)]
    return '<div class="legend">' + "".join(_key(*k) for k in keys) + "</div>"


def _key(label: str, colour: str, dashed: bool = False) -> str:
    return (f'<span><i class="swatch{" dashed" if dashed else ""}" style="border-color:{colour}"></i>'
            f"{esc(label)}</span>")


def run_legend(runs: list[RunView]) -> str:
    return '<div class="legend runs">' + "".join(_key(r.label, r.color) for r in runs) + "</div>"


def _chart(curve: Curve, runs: list[RunView]) -> str:
    series = _series(curve, runs)
    lacking = sorted({r.name for r in runs if not _points(r.train_rows, curve.x_key, curve.y_key)})
    note = f'<p class="note">no {esc(curve.y_key)} logged for {esc(", ".join(lacking))}</p>' if lacking else ""
    chart = line_chart(curve.chart_id, series, x=Axis(curve.x_label), y=Axis(curve.y_label, zero=curve.zero),
                       hlines=_hlines(curve, runs), empty=f"no {curve.y_key} in metrics.jsonl")
    return f"<figure><h3>{esc(curve.title)}</h3>{legend(series, runs)}{chart}{note}</figure>"


def curves_section(runs: list[RunView]) -> str:
    if not any(r.metrics for r in runs):
        from mlxsft.report.html import missing

        return section("Training curves", missing("metrics.jsonl is empty or missing: the run logged no step"))
    note = _note(runs)
    body = (run_legend(runs) if len(runs) > 1 else "") + '<div class="grid2">' + \
        "".join(_chart(c, runs) for c in CURVES) + "</div>"
    return section("Training curves", body, "curves", note=note)


def _note(runs: list[RunView]) -> Optional[str]:
    every = {r.config.train.report_every for r in runs if r.config is not None}
    steps = " or ".join(map(str, sorted(every)))
    window = f"train loss is the mean over each report window ({steps} step{'s' * (steps != '1')})" \
        if every else "train loss is the mean over each report window"
    longest = max((len(r.train_rows) for r in runs), default=0)
    thinned = ""
    if longest > SMOOTH_FROM:
        thinned = "; noisy curves are drawn faint under their moving average"
    if longest > 2 * MAX_BUCKETS + 2:
        thinned += f" ({fmt_num(longest)} points each, thinned to the lowest and highest of {MAX_BUCKETS} buckets)"
    return window + "; validation loss is measured on the held-out split" + thinned
