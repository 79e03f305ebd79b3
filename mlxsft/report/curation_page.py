"""Curation reports as pages: what each ``data filter`` step removed, and ``best-of-k``'s score distributions.

    curation_section(view)    # view: sources.CurationView of a filter or best-of-k report JSON
"""

from __future__ import annotations

from typing import Any

from mlxsft.report.html import cards, esc, key_values, missing, section
from mlxsft.report.sources import CurationView
from mlxsft.report.svg import PALETTE, bar_chart, fmt_num, histogram_chart

STEP_LABELS = {"invalid": "invalid rows", "too_short": "too short", "too_long": "too long", "garbage": "garbage",
               "repetition": "repetitive", "refusal": "refusals", "exact_dup": "exact duplicates",
               "near_dup": "near duplicates", "not_selected": "not selected (--select)"}


def curation_section(view: CurationView) -> str:
    if view.kind == "filter":
        return _filter(view)
    return _best_of_k(view)


def _filter(view: CurationView) -> str:
    r = view.report
    removed = r.get("removed") or {}
    gone = sum(removed.values())
    kept_share = r["rows_out"] / r["rows_in"] if r.get("rows_in") else 0.0
    head = cards([("rows in", f"{r['rows_in']:,}", r.get("input", "")),
                  ("rows kept", f"{r['rows_out']:,}", f"{kept_share:.1%} of the input"),
                  ("rows removed", f"{gone:,}", f"by {sum(1 for v in removed.values() if v)} steps"),
                  ("time", f"{r.get('elapsed_s', 0):.1f} s", f"token counter: {r.get('token_counter')}")])
    bars = [(STEP_LABELS.get(step, step), n) for step, n in removed.items()]
    chart = bar_chart(f"removed-{view.ident}", bars, x_label="rows removed (a row leaves at the first step it fails)",
                      run=view.ident, color=PALETTE[3], fmt=lambda v: fmt_num(v) if v != int(v) else f"{int(v):,}")
    remaining, left = [("input", r["rows_in"])], r["rows_in"]
    for step, n in removed.items():
        left -= n
        remaining.append((STEP_LABELS.get(step, step), left))
    funnel = bar_chart(f"remaining-{view.ident}", remaining, x_label="rows left after each step", run=view.ident,
                       color=PALETTE[0], fmt=lambda v: f"{int(v):,}")
    settings = r.get("settings") or {}
    body = (head + f'<div class="grid2"><figure><h3>What each step removed</h3>{chart}</figure>'
            f"<figure><h3>Rows left after each step</h3>{funnel}</figure></div>"
            f"<details><summary>Settings</summary>{key_values(_flat(settings))}</details>")
    return section(f"data filter: {view.path.name}", body, f"curation-{view.ident}",
                   note=f"{r.get('input')} → {r.get('output')}")


def _best_of_k(view: CurationView) -> str:
    r = view.report
    rate = r.get("acceptance_rate")
    head = cards([("prompts", f"{r.get('prompts', 0):,}", f"k = {r.get('k')} candidates each"),
                  ("accepted", f"{r.get('accepted', 0):,}", f"{rate:.1%} acceptance" if rate is not None else ""),
                  ("rejected", f"{r.get('rejected', 0):,}",
                   f"best below {r['threshold']:g}" if r.get("threshold") is not None else "no threshold"),
                  ("failed", f"{r.get('failed', 0):,}", "no candidate came back"),
                  ("tokens", f"{r.get('tokens', 0):,}", f"{r.get('elapsed_s', 0):.0f} s")])
    charts = []
    for key, title in (("best_scores", "Best score per prompt"), ("candidate_scores", "Every candidate's score")):
        unit = "prompts" if key == "best_scores" else "candidates"
        charts.append(f"<figure><h3>{esc(title)}</h3>{_scores(view, key, r.get(key) or {}, r.get('threshold'), unit)}"
                      f"</figure>")
    body = head + f'<div class="grid2">{"".join(charts)}</div>'
    facts = [("model", r.get("model")), ("scorer", r.get("scorer")), ("kept rows", r.get("out")),
             ("rejected rows", r.get("rejected_file")), ("resumed prompts", r.get("resumed")),
             ("duplicate prompts", r.get("duplicates")), ("retries", r.get("retries"))]
    body += key_values([(k, v) for k, v in facts if v is not None])
    return section(f"best-of-k: {view.path.name}", body, f"curation-{view.ident}",
                   note=f"{r.get('model')} scored by {r.get('scorer')}")


def _scores(view: CurationView, key: str, summary: dict[str, Any], threshold: Any, unit: str) -> str:
    """A histogram of scores; a bar per value when there are few (``stats.summarize``: low == high)."""
    bins = [tuple(b) for b in summary.get("histogram") or []]
    if not bins:
        return missing(f"no {key.replace('_', ' ')} ({summary.get('missing', 0)} missing)")
    colour = PALETTE[2] if key == "best_scores" else PALETTE[0]
    if all(lo == hi for lo, hi, _ in bins):
        kept = (lambda v: threshold is not None and v >= threshold)
        bars = [(f"score {lo:g}" + (" (≥ threshold)" if kept(lo) else ""), n) for lo, _, n in bins]
        chart = bar_chart(f"{key}-{view.ident}", bars, x_label=unit, run=view.ident, color=colour,
                          fmt=lambda v: f"{v:g}")
    else:
        markers = [(float(threshold), f"threshold {threshold:g}")] if threshold is not None else []
        chart = histogram_chart(f"{key}-{view.ident}", bins, x_label="score", y_label=unit, run=view.ident,
                                color=colour, markers=markers)
    stats = " · ".join(f"{k} {summary[k]:.3g}" for k in ("min", "p25", "median", "mean", "p75", "max")
                       if summary.get(k) is not None)
    extra = f" · {summary['missing']} without a score" if summary.get("missing") else ""
    return chart + f'<p class="note">n {summary.get("n", 0):,} · {esc(stats)}{esc(extra)}</p>'


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        else:
            out.append((prefix + k, "—" if v is None else v))
    return out
