"""The before/after table and the learned-answer report, as ``mlxsft train --compare`` and ``mlxsft eval`` show them.

One renderer for both commands, so a ✓ means the same everywhere (``mlxsft.scoring.verdict``): regressions
first, then wins, then unchanged questions, then the open questions (no reference, read side by side); the
legend; the per-category totals of wins and regressions; the share of answers that stopped at the end of
turn; and the forgetting score. Off a terminal the same content is printed as plain lines.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from mlxsft.cli.ui import console
from mlxsft.learned import describe, learned_totals, outcome, regressions_first
from mlxsft.scoring import LEGEND, MARKS

_COLOR = {"right": "green", "partial": "yellow", "wrong": "red"}


def _short(text: str, n: int = 300) -> str:
    return text if len(text) < n else text[: n - 3] + "…"


def _group(row: Any, models: list[str]) -> str:
    return outcome(row) if "base" in models and "tuned" in models or row.reference is None else "scored"


def _cell(row: Any, model: str) -> str:
    ans = escape(_short(row.answers[model]))
    cut = " [dim](token limit)[/]" if row.finish_reason.get(model) == "length" else ""
    if row.reference is None:
        return ans + cut
    v = row.verdicts[model]
    return f"[{_COLOR[v]}]{MARKS[v]}[/] {ans}{cut}"


def render_compare(report: Any, title: str = "Before / after on held-out questions") -> None:
    rows = regressions_first(report)
    totals = learned_totals(report)
    if console.is_terminal:
        table = Table(title=title, show_lines=True, expand=True, caption=LEGEND)
        table.add_column("", ratio=1)
        table.add_column("question", ratio=3)
        table.add_column("reference", ratio=1)
        for m in report.models:
            table.add_column(f"{m} answer", ratio=3)
        for row in rows:
            table.add_row(_group(row, report.models), escape(row.question), escape(row.reference or "—"),
                          *[_cell(row, m) for m in report.models])
        console.print(table)
        if totals is not None:
            console.print(_categories(totals))
    else:
        print(LEGEND)
        for row in rows:
            marks = "  ".join(f"{m}={MARKS[row.verdicts[m]] if m in row.verdicts else '-'}" for m in report.models)
            print(f"[{_group(row, report.models)}] Q: {row.question}\n   ref: {row.reference}  {marks}")
            for m in report.models:
                cut = " (token limit)" if row.finish_reason.get(m) == "length" else ""
                print(f"   {m}: {row.answers[m][:200]!r}{cut}")
        if totals is not None:
            for c, t in totals["per_category"].items():
                print(f"   {c}: {t['right_before']} -> {t['right_after']} right of {t['questions']} "
                      f"(+{t['wins']} wins, -{t['regressions']} regressions)")
    _summary(report, totals)


def _categories(totals: dict) -> Table:
    table = Table(title="Learned, per category")
    for col in ("category", "questions", "base right", "tuned right", "wins", "regressions", "unchanged"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for c, t in [*totals["per_category"].items(), ("all", totals)]:
        table.add_row(c, str(t["questions"]), str(t["right_before"]), str(t["right_after"]),
                      f"[green]{t['wins']}[/]", f"[red]{t['regressions']}[/]" if t["regressions"] else "0",
                      str(t["unchanged"]))
    return table


def _summary(report: Any, totals: Any) -> None:
    n = report.n_scored
    parts = []
    for m in report.models:
        acc = report.accuracy(m, "right")
        parts.append(f"{m} right {acc * n:.0f}/{n} ({acc:.1%})" if acc is not None else f"{m}: no references")
    open_n = len(report.rows) - n
    lines = ["; ".join(parts) + (f" · {open_n} open questions (no reference, shown side by side)" if open_n else "")]
    learned = describe(totals, report.forgetting)
    if learned:
        lines.append(learned)
    for line in lines:
        if console.is_terminal:
            console.print(f"[bold]{escape(line)}[/]")
        else:
            print(line, flush=True)
