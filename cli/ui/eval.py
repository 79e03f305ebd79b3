"""Rendering for ``mlxsft eval``: a progress bar while it runs, then the answers table and the scores."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlxsft.cli.ui import console, err_console

METRICS = ("exact", "numeric", "contains")


class EvalProgress:
    """``progress(stage, done, total)`` for ``run_eval``: a bar on a terminal (stderr), silent otherwise."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and err_console.is_terminal
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err_console, transient=True)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "EvalProgress":
        if self.enabled:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)


def _pct(v: Any) -> str:
    return "—" if v is None else f"{v:.1%}"


def render_eval(report: Any) -> None:
    q = report.questions
    if q is not None:
        table = Table(title=f"Answers ({escape(report.questions_file or '')})", show_lines=True, expand=True)
        table.add_column("question", ratio=3)
        table.add_column("reference", ratio=1)
        for m in q.models:
            table.add_column(f"{m}", ratio=3)
        for row in q.rows:
            cells = []
            for m in q.models:
                ans = row.answers[m] if len(row.answers[m]) < 300 else row.answers[m][:297] + "…"
                mark = ""
                if row.reference is not None:
                    s = row.scores[m]
                    ok = s["exact"] or s["numeric"]
                    mark = f"[{'green' if ok else ('yellow' if s['contains'] else 'red')}]" \
                           f"{'✓' if ok else ('~' if s['contains'] else '✗')}[/] "
                cells.append(f"{mark}{escape(ans)}\n[dim]{row.tokens[m]} tok · {row.tokens_per_sec[m]:.0f} tok/s[/]")
            table.add_row(escape(row.question), escape(row.reference or "—"), *cells)
        console.print(table)
        scores = Table(title=f"Scores on {q.n_scored} questions with a reference")
        scores.add_column("model")
        for metric in METRICS:
            scores.add_column(metric, justify="right")
        for m in q.models:
            scores.add_row(m, *[_pct(q.accuracy(m, metric)) for metric in METRICS])
        console.print(scores)
    if report.losses:
        first = next(iter(report.losses.values()))
        loss = Table(title=f"Loss on {escape(report.data_path or '')} (split {escape(report.split or '')}): "
                           f"{first.rows} rows, {first.tokens} supervised tokens")
        loss.add_column("model")
        loss.add_column("loss", justify="right")
        loss.add_column("perplexity", justify="right")
        for m, r in report.losses.items():
            loss.add_row(m, f"{r.loss:.4f}", f"{r.perplexity:.2f}")
        console.print(loss)
