"""Rendering for ``mlxsft experiment``: a line per stage and per arm while it runs, then the table.

``ExperimentView`` is the experiments' callback (``mlxsft/experiments/events.py``). Training inside an arm shows
as a transient status line on a terminal (step, loss, the scoring's progress) and not at all off one; each
finished arm gets one line with its numbers; the end prints OUT/table.md as written.
"""

from __future__ import annotations

from typing import Optional

from rich.markup import escape
from rich.status import Status
from rich.text import Text

from mlxsft.cli.ui import console, is_interactive, print_warning


class ExperimentView:
    def __init__(self) -> None:
        self.interactive = is_interactive()
        self.status: Optional[Status] = None
        self.seen_messages: set[str] = set()
        self.out: Optional[str] = None

    def __call__(self, event: str, payload: dict) -> None:
        handler = getattr(self, f"_on_{event}", None)
        if handler is None:
            raise ValueError(f"unknown experiment event {event!r}")
        handler(payload)

    def _line(self, text: str) -> None:
        if self.interactive:
            console.print(text, soft_wrap=True)
        else:
            print(Text.from_markup(text).plain, flush=True)

    def _on_stage(self, p: dict) -> None:
        self._line(f"[bold]▸ {escape(p['text'])}[/]")

    def _on_arm_start(self, p: dict) -> None:
        self.current = f"[{p['index']}/{p['total']}] {p['arm']} seed {p['seed']}"
        if self.interactive:
            self._stop_status()
            self.status = console.status(escape(self.current) + ": loading")
            self.status.start()

    def _on_train(self, p: dict) -> None:
        event, data = p["event"], p["payload"]
        if event == "message" and data.get("text") not in self.seen_messages:
            self.seen_messages.add(data["text"])  # the same note for every arm: once is enough
            self._line(f"[dim]{escape(data['text'])}[/]")
        if self.status is None:
            return
        if event == "step":
            self.status.update(f"{escape(self.current)}: step {data['step']}/{data['total_steps']} "
                               f"loss {data['train_loss']:.3f} · {data['tokens_per_sec']:.0f} tokens/s")
        elif event == "compare_progress":
            self.status.update(f"{escape(self.current)}: scoring {data['done']}/{data['total']} answers")

    def _on_arm_done(self, p: dict) -> None:
        self._stop_status()
        r = p["result"]
        kl = "—" if r.kl is None else f"{r.kl:.3f}"
        cached = " [dim](measured before, read back)[/]" if p["cached"] else ""
        scored = p.get("scored")  # an experiment's own scoring (reasoning: the trace stripped) replaces the raw one
        if scored:
            right = (f"right {scored['right']}/{r.questions} with the trace stripped (base {scored['right_base']}), "
                     f"{scored['cut_off']} cut off in the trace")
        else:
            right = f"right {r.right}/{r.questions} (base {r.right_base}), +{r.wins} -{r.regressions}"
        self._line(f"{escape(getattr(self, 'current', r.arm))}: {right}, forgetting KL {kl} · {r.steps} steps, "
                   f"{r.trained_tokens:,} tokens, {r.s_per_step:.1f} s/step, {r.total_s:.0f} s in all{cached}")

    def _on_done(self, p: dict) -> None:
        self.out = p["out"]

    def _stop_status(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def interrupted(self) -> None:
        self._stop_status()
        print_warning("interrupted: the arms measured so far are kept; run the same command again to continue")

    def finish(self, results: dict) -> None:
        self._stop_status()
        from pathlib import Path

        out = Path(self.out or results["setup"]["out"])
        print((out / "table.md").read_text(), flush=True)
        self._line(f"[bold]wrote[/] {escape(str(out / 'results.json'))}, {escape(str(out / 'table.md'))} and "
                   f"the plots in {escape(str(out))}")
