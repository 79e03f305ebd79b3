"""Rendering for ``mlxsft train``: a live panel on a terminal, plain log lines otherwise.

``TrainView.on_event`` is the trainer's callback; it is the only place training output is produced.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlxsft.cli.ui import console, is_interactive
from mlxsft.config import Config
from mlxsft.events import EVENTS, Event

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    vals = values[-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * (len(SPARK) - 1)))] for v in vals)


def _fmt(v: Any, spec: str = ".4f") -> str:
    return "—" if v is None else format(v, spec)


def quiet_keys() -> Any:
    """Stop the terminal echoing keys (Ctrl-C's ``^C``) while the live panel draws: an echo moves the cursor
    under rich's feet, and each redraw then left a stale copy of the panel's top border. Returns the undo,
    or None where stdin is not a terminal."""
    try:
        import termios

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    quiet = list(saved)
    quiet[3] &= ~(termios.ECHO | getattr(termios, "ECHOCTL", 0))
    try:
        termios.tcsetattr(fd, termios.TCSADRAIN, quiet)
    except OSError:
        return None

    def undo() -> None:
        try:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        except OSError:
            pass

    return undo


class StepClock:
    """Seconds per optimizer step, measured between step reports and never across a validation pass, so the
    time left is (steps left) x (median measured step time), known from the second report on."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.at_step = 0
        self._since: float | None = None  # when the report at ``at_step`` came; None right after a validation

    def start(self, step: int) -> None:
        self.at_step, self._since = step, time.monotonic()

    def step(self, step: int) -> None:
        now = time.monotonic()
        if self._since is not None and step > self.at_step:
            self.rates.append((now - self._since) / (step - self.at_step))
        self.at_step, self._since = step, now

    def pause(self) -> None:
        self._since = None  # the steps up to the next report include the validation: not timed

    def remaining(self, total_steps: int) -> str:
        if not self.rates:
            return "-:--:--"
        recent = sorted(self.rates[-20:])
        seconds = int(recent[len(recent) // 2] * max(total_steps - self.at_step, 0) + 0.5)
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class TrainView:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.live_mode = is_interactive()
        self.losses: list[float] = []
        self.last: dict[str, Any] = {}
        self._echo_off: Any = None  # restores the terminal's echo once the panel is gone
        self.prev_step = self.last_step = 0  # the report before the last one: the panel's loss is the mean since
        self.clock = StepClock()
        self.val: float | None = None
        self.best: float | None = None
        self.machine_gb = 0.0
        self.total_steps = 0
        self.live: Live | None = None
        self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("epoch {task.fields[epoch]}"),
                                 TimeElapsedColumn(), TextColumn("{task.fields[eta]} left"), console=console)
        self.task = None
        self._compare_progress: Progress | None = None
        self._compare_announced = False

    def __enter__(self) -> "TrainView":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop_live()
        if self._compare_progress is not None:
            self._compare_progress.stop()

    # ----------------------------------------------------------------- events
    def on_event(self, event: "Event", payload: dict) -> None:
        handlers = {"message": self._on_message, "progress": self._on_progress, "data": self._on_data,
                    "plan": self._on_plan, "start": self._on_start, "step": self._on_step, "eval": self._on_eval,
                    "checkpoint": self._on_checkpoint, "end": self._on_end,
                    "compare_progress": self._on_compare_progress, "compare": self._on_compare}
        handler = handlers.get(event)
        if handler is None:  # a misspelled event must fail, not vanish
            raise ValueError(f"unknown training event {event!r} (known: {', '.join(EVENTS)})")
        handler(payload)

    def _on_message(self, p: dict) -> None:
        self._print(p["text"])

    def _on_progress(self, p: dict) -> None:
        if not self.live_mode and p.get("fraction") in (0.0, 1.0):
            self._print(f"{p['stage']} ({p['fraction']:.0%})")

    def _on_data(self, p: dict) -> None:
        for name in ("train", "valid"):
            s = p.get(name)
            if s:
                extra = ", ".join(f"{k} {v}" for k, v in s.items()
                                  if k in ("truncated", "dropped_overlong", "no_supervised_rows") and v)
                self._print(f"data {name}: {s.get('rows', '?')} rows, {s.get('total_tokens', '?')} tokens, "
                            f"{s.get('supervised_tokens', '?')} supervised" + (f" ({extra})" if extra else ""))

    def _on_plan(self, p: dict) -> None:
        plan, self.machine_gb = p["plan"], p["machine_gb"]
        self._print(f"{p['method']}: {p['trainable']:,} trainable of {p['total']:,} parameters "
                    f"({100 * p['trainable'] / max(p['total'], 1):.2f}%)")
        self._print(f"memory estimate: {plan.total_gb:.2f} GB (weights {plan.weights_gb:.2f}, "
                    f"trainable+optimizer {plan.trainable_gb:.2f}, activations {plan.activations_gb:.2f}, "
                    f"logits {plan.logits_gb:.2f}"
                    + (f", runtime {plan.runtime_gb:.2f}" if plan.runtime_gb else "")
                    + f") of {self.machine_gb:.1f} GB")
        self._print(f"run folder: {p['run_dir']}")

    def _on_start(self, p: dict) -> None:
        self.total_steps = p["total_steps"]
        self.prev_step = self.last_step = p["step"]
        self.clock.start(p["step"])
        what = "resuming at" if p["resumed"] else "starting at"
        self._print(f"training {p['rows']} rows, {p['total_steps']} steps ({what} step {p['step']})")
        if self.live_mode:
            self.task = self.progress.add_task("train", total=self.total_steps, completed=p["step"], epoch="0.00",
                                               eta="-:--:--")
            self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
            self._echo_off = quiet_keys()
            self.live.start()

    def _on_step(self, p: dict) -> None:
        self.prev_step, self.last_step = self.last_step, p["step"]
        self.last = p
        loss = p["train_loss"]
        self.losses.append(loss)
        self.clock.step(p["step"])
        if self.live:
            self.progress.update(self.task, completed=p["step"], epoch=f"{p['epoch']:.2f}",
                                 eta=self.clock.remaining(self.total_steps))
            self.live.update(self._render())
        else:
            self._print(f"step {p['step']}/{p['total_steps']} epoch {p['epoch']:.2f} loss {loss:.4f} "
                        f"lr {p['learning_rate']:.2e} grad_norm {p['grad_norm']:.3f} "
                        f"tok/s {p['tokens_per_sec']:.0f} tokens {p['trained_tokens']} "
                        f"peak_mem {p['peak_memory_gb']:.2f}GB")

    def _on_eval(self, p: dict) -> None:
        self.clock.pause()  # validation time is not training time: the estimate leaves it out
        self.val, self.best = p["val_loss"], p["best_val_loss"]
        if self.live:
            self.live.update(self._render())
        else:
            self._print(f"eval step {p['step']}: val_loss {p['val_loss']:.4f} ppl {p['val_ppl']:.2f} "
                        f"best {p['best_val_loss']:.4f}")

    def _on_checkpoint(self, p: dict) -> None:
        if not self.live:
            self._print(f"checkpoint step {p['step']}: {p['path']}")

    def _on_end(self, p: dict) -> None:
        self._stop_live()

    def _on_compare_progress(self, p: dict) -> None:
        if not self.live_mode:
            if not self._compare_announced:  # answers arrive a batch at a time: announce at the first batch
                self._compare_announced = True
                self._print(f"before/after: asking {p['total'] // 2} questions to base and tuned model")
            return
        if self._compare_progress is None:
            self._compare_progress = Progress(TextColumn("[bold]before/after"), BarColumn(), MofNCompleteColumn(),
                                              TimeElapsedColumn(), console=console, transient=True)
            self._compare_progress.start()
            self._ctask = self._compare_progress.add_task("compare", total=p["total"])
        self._compare_progress.update(self._ctask, completed=p["done"])
        if p["done"] >= p["total"]:
            self._compare_progress.stop()
            self._compare_progress = None

    def _on_compare(self, p: dict) -> None:
        from mlxsft.cli.ui.compare import render_compare

        render_compare(p["report"])

    # ----------------------------------------------------------------- panel
    def _render(self) -> Panel:
        p = self.last
        stats = Table.grid(padding=(0, 2))
        stats.add_column(style="bold")
        stats.add_column()
        window = (f"mean of steps {self.prev_step + 1}–{p['step']}" if p.get("step", 0) > self.prev_step + 1
                  else f"step {p.get('step', 0)}")
        stats.add_row("train loss", f"{_fmt(p.get('train_loss'))}  ({window})  [cyan]{sparkline(self.losses)}[/]")
        stats.add_row("val loss", f"{_fmt(self.val)}  (best {_fmt(self.best)})")
        stats.add_row("learning rate", _fmt(p.get("learning_rate"), ".2e"))
        stats.add_row("grad norm", _fmt(p.get("grad_norm"), ".3f"))
        stats.add_row("tokens/s", _fmt(p.get("tokens_per_sec"), ".0f"))
        stats.add_row("tokens seen", _fmt(p.get("trained_tokens"), ","))
        stats.add_row("peak memory", f"{_fmt(p.get('peak_memory_gb'), '.2f')} GB of {self.machine_gb:.1f} GB")
        return Panel(Group(self.progress, stats), title=f"mlxsft train · {self.cfg.model.model} · {self.cfg.lora.method}",
                     border_style="blue")

    def _stop_live(self) -> None:
        if self.live:
            self.live.update(self._render())
            self.live.stop()
            self.live = None
        if self._echo_off is not None:
            self._echo_off()
            self._echo_off = None

    def _print(self, text: str) -> None:
        if self.live:
            self.live.console.print(text, soft_wrap=True, markup=False)
        elif self.live_mode:
            console.print(text, soft_wrap=True, markup=False)
        else:
            print(text, flush=True)

    # ----------------------------------------------------------------- summary
    def finish(self, outcome: Any) -> None:
        if outcome.planned_only:
            return
        r = outcome.result
        run = shlex.quote(str(outcome.run_dir))
        head = f"stopped at step {r.steps}/{r.total_steps}" if r.interrupted else f"done: {r.steps}/{r.total_steps} steps"
        val = (f"val loss {_fmt(r.val_loss)} (best {_fmt(r.best_val_loss)} at step {r.best_step})"
               if r.best_step is not None else "no validation split (so no best/)")
        self._print(f"{head} in {r.elapsed_s:.1f}s, {r.tokens_per_sec:.0f} tokens/s, last step's train loss "
                    f"{_fmt(r.train_loss)}, {val}, peak memory {r.peak_memory_gb:.2f} GB")
        best = f"  (best: {outcome.run_dir}/best)" if r.best_step is not None else ""
        self._print(f"tuned weights: {outcome.run_dir}{best}")
        if (outcome.run_dir / "report.html").is_file():
            self._print(f"report: {outcome.run_dir / 'report.html'} (curves, data, answers; open it in a browser)")
        if outcome.compare_stopped:
            self._print(f"training is complete; the before/after table was stopped by Ctrl-C. It is made by: "
                        f"mlxsft eval --adapter {run} --compare")
            sys.exit(130)
        if r.interrupted:
            cmd = f"mlxsft train --resume {shlex.quote(str(outcome.run_dir))}"
            self._print(f"interrupted; resume with: {cmd}")
            sys.exit(130)
        if r.stopped_early:
            self._print(f"stopped early at step {r.steps} (no better val loss)")

    def stopped_at_once(self, run_dir: Path) -> None:
        """Ctrl-C ended the run at once (a second one in the loop, or one before the loop started), without a
        final checkpoint: say what is left and how to go on."""
        from mlxsft.errors import MlxsftError
        from mlxsft.runs import latest_checkpoint

        try:
            checkpoint = latest_checkpoint(run_dir)
        except MlxsftError:
            print(f"stopped at once by Ctrl-C; {run_dir} has no checkpoint yet, nothing to resume",
                  file=sys.stderr)
            return
        cmd = f"mlxsft train --resume {shlex.quote(str(run_dir))}"
        print(f"stopped at once by Ctrl-C; the last checkpoint ({checkpoint.name}) is intact, resume with: "
              f"{cmd}", file=sys.stderr)
