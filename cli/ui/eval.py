"""Rendering for ``mlxsft eval``: a progress bar while it runs, then the answers table and the scores."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlxsft.cli.ui import console, err_console


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


def render_eval(report: Any) -> None:
    q = report.questions
    if q is not None:
        from mlxsft.cli.ui.compare import render_compare

        render_compare(q, title=f"Answers ({escape(report.questions_file or '')})")
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
