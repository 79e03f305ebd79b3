"""The report's before/after section: the held-out questions of ``compare.json``, regressions and wins first.

    questions_section(runs)

The totals, the order and the win / regression / unchanged labels come from ``mlxsft.learned`` (as the
terminal table of ``mlxsft train`` and ``mlxsft eval --compare`` shows them), the verdict marks from
``mlxsft.scoring``; a filter by category, outcome and verdict narrows the table (the page's one script).
"""

from __future__ import annotations

from typing import Any

from mlxsft.learned import describe, learned_totals, outcome, regressions_first
from mlxsft.report.html import Raw, cards, esc, missing, per_run, section, table
from mlxsft.report.sources import RunView
from mlxsft.scoring import LEGEND, MARKS


def questions_section(runs: list[RunView]) -> str:
    return section("Before / after on held-out questions", per_run(runs, _run_questions), "questions",
                   note="greedy answers of the base model and the tuned one; " + LEGEND)


def _run_questions(run: RunView) -> str:
    report = run.compare
    if report is None:
        why = "the run has compare: false" if run.config is not None and not run.config.train.compare else \
            "the run stopped before the table, or was made by an older mlxsft"
        return missing(f"{run.path}: no compare.json ({why}); `mlxsft eval --adapter {run.path} --compare` makes it")
    totals = learned_totals(report)
    out = [_cards(report, totals)]
    line = describe(totals, report.forgetting)
    if line:
        out.append(f'<p class="note">{esc(line)}</p>')
    if totals is not None:
        out.append(_categories(totals))
    out.append(_table(run, report))
    return "".join(out)


def _share(report: Any, model: str) -> str:
    acc = report.accuracy(model, "right")
    return f"{round(acc * report.n_scored)}/{report.n_scored}" if acc is not None else "—"


def _cards(report: Any, totals: Any) -> str:
    items = [(f"{m} right", _share(report, m), "of the scored questions") for m in report.models]
    if totals is not None:
        net = totals["wins"] - totals["regressions"]
        items += [("wins", Raw(f'<span class="v-right">{totals["wins"]}</span>'), "base wrong, tuned right"),
                  ("regressions", Raw(f'<span class="v-wrong">{totals["regressions"]}</span>'
                                      if totals["regressions"] else "0"), "base right, tuned wrong"),
                  ("learned", f"{net:+d}", f"{totals['unchanged']} unchanged")]
        stops = totals.get("stop_rate_scored") or {}
        if all(v is not None for v in stops.values()) and stops:
            items.append(("stopped at end of turn", " → ".join(f"{v:.0%}" for v in stops.values()),
                          " → ".join(stops)))
    f = report.forgetting
    if f is not None:
        items.append(("forgetting", f"{f.kl:.3f}", f"KL(base‖tuned) nats/token on {f.prompts} general prompts"))
    open_n = len(report.rows) - report.n_scored
    if open_n:
        items.append(("open questions", str(open_n), "no reference: read side by side"))
    return cards(items)


def _categories(totals: dict[str, Any]) -> str:
    rows = [[c, t["questions"], t["right_before"], t["right_after"], t["wins"], t["regressions"], t["unchanged"]]
            for c, t in [*totals["per_category"].items(), ("all", totals)]]
    return ("<h4>Learned, per category</h4>"
            + table(["category", "questions", "base right", "tuned right", "wins", "regressions", "unchanged"], rows,
                    numeric=range(1, 7), css="categories"))


def _answer(row: Any, model: str) -> Raw:
    text = esc(row.answers.get(model, ""))
    cut = ' <span class="cut">(token limit)</span>' if row.finish_reason.get(model) == "length" else ""
    v = row.verdicts.get(model)
    mark = f'<span class="v-{esc(v)}">{esc(MARKS[v])}</span> ' if v in MARKS else ""
    return Raw(mark + text + cut)


def _table(run: RunView, report: Any) -> str:
    rows = regressions_first(report)
    table_id = f"questions-{run.ident}"
    groups = [outcome(r) for r in rows]
    categories = sorted({r.category or "uncategorized" for r in rows})
    verdicts = [m for m in ("right", "partial", "wrong") if any(r.verdicts.get("tuned") == m for r in rows)]
    select = _select("category", "category", categories) + \
        _select("outcome", "outcome", [g for g in ("regression", "win", "unchanged", "scored", "open") if g in groups]) + \
        (_select("verdict", "tuned verdict", verdicts) if verdicts else "")
    filters = (f'<div class="filters" data-table="{esc(table_id)}">{select}'
               f'<span>showing <b class="shown">{len(rows)}</b> of {len(rows)} questions</span></div>')
    body = [[Raw(f'<span class="badge b-{esc(g)}">{esc(g)}</span>'), r.category or "uncategorized", r.question,
             r.reference if r.reference is not None else "—", *[_answer(r, m) for m in report.models]]
            for r, g in zip(rows, groups)]
    attrs = [{"category": r.category or "uncategorized", "outcome": g, "verdict": r.verdicts.get("tuned", "")}
             for r, g in zip(rows, groups)]
    return ("<h4>Every question, regressions and wins first</h4>" + filters + '<div class="scroll">'
            + table(["", "category", "question", "reference", *[f"{m} answer" for m in report.models]], body,
                    table_id=table_id, row_attrs=attrs, css="questions") + "</div>")


def _select(name: str, label: str, values: list[str]) -> str:
    options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
    return f'<label>{esc(label)} <select name="{esc(name)}"><option value="">all</option>{options}</select></label>'
