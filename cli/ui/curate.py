"""Rendering for ``mlxsft data distill | best-of-k | filter``: a progress bar while they run, then a summary.

``CurateProgress`` is the ``progress(Tick)`` callback of ``mlxsft.curate``: a rich bar on stderr with the
running counts on a terminal; otherwise a plain line on stderr per 10% at most every 5 s (logs, CI, pipes).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from mlxsft.cli.ui import console, err_console, print_warning

COUNT_LABELS = {"rows": "rows", "accepted": "kept", "rejected": "rejected", "failed": "failed", "empty": "empty",
                "retries": "retries", "kept": "kept"}


def _counts_text(counts: dict[str, float]) -> str:
    parts = []
    for k, v in counts.items():
        if k == "acceptance":
            parts.append(f"acceptance {v:.0%}")
        elif k in COUNT_LABELS and (v or k in ("rows", "accepted", "kept")):
            parts.append(f"{COUNT_LABELS[k]} {int(v)}")
        elif v and k not in COUNT_LABELS:  # filter steps: only those that removed something
            parts.append(f"{k} {int(v)}")
    return " · ".join(parts)


class CurateProgress:
    def __init__(self, enabled: bool = True):
        self.interactive = enabled and err_console.is_terminal
        self.plain = enabled and not self.interactive
        self.bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[info]}"), console=err_console, transient=False)
        self.tasks: dict[str, Any] = {}
        self.logged: dict[str, tuple[int, float]] = {}  # stage -> (10% step, time) last logged (plain mode)

    def __enter__(self) -> "CurateProgress":
        if self.interactive:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.interactive:
            self.bar.stop()

    def __call__(self, tick: Any) -> None:
        info = _counts_text(tick.counts)
        if self.interactive:
            if tick.stage not in self.tasks:
                self.tasks[tick.stage] = self.bar.add_task(tick.stage, total=tick.total, info="")
            self.bar.update(self.tasks[tick.stage], completed=tick.done, total=tick.total, info=escape(info))
        elif self.plain:
            # a line per 10% at most every 5 s, and the last one: enough for a log, never a flood
            step = (10 * tick.done // tick.total) if tick.total else 10
            last_step, last_time = self.logged.get(tick.stage, (-1, 0.0))
            now = time.monotonic()
            if step > last_step and (now - last_time >= 5.0 or step == 10):
                self.logged[tick.stage] = (step, now)
                sys.stderr.write(f"{tick.stage}: {tick.done}/{tick.total}" + (f" ({info})" if info else "") + "\n")
                sys.stderr.flush()


def print_loading(what: str) -> None:
    if err_console.is_terminal:
        err_console.print(f"[dim]{escape(what)}[/]", soft_wrap=True)
    else:
        sys.stderr.write(what + "\n")


def print_interrupted(out: Any) -> None:
    print_warning(f"interrupted: the rows finished so far are saved in {out}; run the same command again to resume")


def print_insecure_endpoint(url: str) -> None:
    print_warning(f"{url}: plain http to another machine (--allow-insecure-endpoint): the API key and every prompt "
                  "travel unencrypted")


def _resume_note(rows_before: int, dropped: int) -> Optional[str]:
    notes = []
    if rows_before:
        notes.append(f"resumed: {rows_before} rows were already there")
    if dropped:
        notes.append(f"dropped a half-written last line ({dropped} bytes)")
    return "; ".join(notes) or None


def _fmt(v: Optional[float], spec: str = ".3g") -> str:
    return "—" if v is None else format(v, spec)


def render_distill(r: Any) -> None:
    console.print(f"[bold]distill[/] → {escape(str(r.out))}", soft_wrap=True)
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("teacher", escape(r.teacher))
    table.add_row("prompts", str(r.prompts))
    table.add_row("rows written now", str(r.rows_written))
    table.add_row("rows in output", str(r.rows_before + r.rows_written))
    for label, v in (("duplicate prompts", r.duplicates), ("empty answers (retried on re-run)", r.empty),
                     ("refused by endpoint (retried on re-run)", r.failed), ("requests retried", r.retries)):
        if v:
            table.add_row(label, str(v))
    rate = f" ({r.tokens / r.elapsed_s:.1f} tok/s)" if r.elapsed_s > 0 and r.tokens else ""
    table.add_row("generated tokens", f"{r.tokens}{rate}")
    table.add_row("time", f"{r.elapsed_s:.1f} s")
    console.print(table)
    note = _resume_note(r.rows_before, r.dropped_bytes)
    if note:
        console.print(f"[dim]{escape(note)}[/]")
    for e in r.errors:
        print_warning(e)


def _summary_row(table: Table, label: str, s: Any) -> None:
    table.add_row(label, str(s.n), _fmt(s.mean), _fmt(s.min), _fmt(s.p25), _fmt(s.median), _fmt(s.p75),
                  _fmt(s.max), str(s.missing) if s.missing else "")


def _histogram(s: Any, width: int = 30) -> Table:
    table = Table(title="best score per prompt", title_justify="left", show_header=True)
    table.add_column("score", justify="right")
    table.add_column("prompts", justify="right")
    table.add_column("", no_wrap=True)
    top = max((c for _, _, c in s.histogram), default=0) or 1
    for lo, hi, c in s.histogram:
        label = _fmt(lo) if lo == hi else f"{_fmt(lo)} – {_fmt(hi)}"
        table.add_row(label, str(c), "█" * max(1 if c else 0, round(width * c / top)))
    return table


def render_best_of_k(r: Any) -> None:
    console.print(f"[bold]best-of-{r.k}[/] → {escape(str(r.out))}", soft_wrap=True)
    head = Table(show_header=False)
    head.add_column(style="bold")
    head.add_column(justify="right")
    head.add_row("model", escape(r.model))
    head.add_row("scorer", escape(r.scorer))
    head.add_row("prompts", str(r.prompts))
    rate = r.acceptance_rate
    thr = "" if r.threshold is None else f" (threshold {r.threshold:g})"
    head.add_row("acceptance rate", ("—" if rate is None else f"{rate:.1%}") + thr)
    head.add_row("kept", f"{r.accepted} → {escape(str(r.out))}")
    head.add_row("rejected", f"{r.rejected} → {escape(str(r.rejected_path))}")
    for label, v in (("resumed (done before)", r.resumed), ("duplicate prompts", r.duplicates),
                     ("failed (endpoint refused every candidate)", r.failed), ("requests retried", r.retries)):
        if v:
            head.add_row(label, str(v))
    head.add_row("time", f"{r.elapsed_s:.1f} s")
    console.print(head)
    scores = Table(title="score distribution", title_justify="left")
    for col in ("", "n", "mean", "min", "p25", "median", "p75", "max", "missing"):
        scores.add_column(col, justify="left" if not col else "right")
    _summary_row(scores, "best per prompt", r.best)
    _summary_row(scores, "all candidates", r.candidates)
    console.print(scores)
    if r.best.histogram:
        console.print(_histogram(r.best))


def render_filter(r: Any, report_path: Any) -> None:
    if r.up_to_date:
        console.print(f"[green]✓[/] {escape(r.output)} is up to date (same input and options); nothing to do")
    console.print(f"[bold]filter[/] {escape(r.input)} → {escape(r.output)}", soft_wrap=True)
    table = Table()
    table.add_column("step")
    table.add_column("removed", justify="right")
    table.add_column("rows left", justify="right")
    left = r.rows_in
    table.add_row("input", "", str(left))
    for step, n in r.removed.items():
        left -= n
        if n or step in ("exact_dup", "near_dup"):
            table.add_row(step.replace("_", " "), str(n), str(left))
    table.add_row("[bold]output[/]", str(r.rows_in - r.rows_out), f"[bold]{r.rows_out}[/]")
    console.print(table)
    extra = [f"tokens counted with {escape(r.token_counter)}"]
    if getattr(r, "minhash", None):
        extra.append(f"MinHash by {escape(r.minhash)}")
    if r.embedder:
        extra.append(f"prompts embedded with {escape(r.embedder)}")
    extra.append(f"report: {escape(str(report_path))}")
    if not r.up_to_date:
        extra.append(f"{r.elapsed_s:.1f} s")
    console.print("[dim]" + " · ".join(extra) + "[/]", soft_wrap=True)
