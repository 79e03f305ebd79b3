"""Terminal side of ``mlxsft chat``: the interactive REPL and the scripted (non-tty stdin) mode.

``run_repl`` reads lines with readline editing, streams tokens as they come, shows compare turns as
two live panels side by side, and turns Ctrl-C into "stop this answer". ``run_script`` answers one
prompt per stdin line, plain or as ``--json`` lines; command replies go to stderr so stdout stays data.
All session logic lives in ``mlxsft.chat``.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.status import Status
from rich.table import Table
from rich.text import Text

from mlxsft.chat import ChatSession, parse_command, prompt_text
from mlxsft.cli.ui import console, err_console

PROMPT = ">>> "


class StopFlag:
    """Set by SIGINT while an answer streams; the generator polls it after every token."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self) -> bool:
        return self.set


@contextmanager
def ctrl_c_stops_answer() -> Iterator[StopFlag]:
    flag = StopFlag()

    def handle(signum: int, frame: Any) -> None:
        flag.set = True

    old = signal.signal(signal.SIGINT, handle)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)


@contextmanager
def loading(what: str) -> Iterator[Callable[[str, float], None]]:
    """A spinner on stderr while models load (terminal only); yields a ``progress(stage, fraction)``."""
    if not err_console.is_terminal:
        yield lambda stage, frac: None
        return
    with Status(f"loading {what}", console=err_console) as status:
        yield lambda stage, frac: status.update(f"{stage} ({frac:.0%})")


def _stats(answer: Any) -> str:
    parts = [f"{answer.tokens} tokens", f"{answer.tokens_per_sec:.1f} tok/s"]
    if answer.reused_tokens:
        parts.append(f"{answer.reused_tokens}/{answer.prompt_tokens} cached")
    if answer.finish_reason == "length":
        parts.append("max tokens")
    if answer.finish_reason == "interrupted":
        parts.append("stopped")
    return " · ".join(parts)


# ----------------------------------------------------------------------------- interactive
def run_repl(session: ChatSession) -> None:
    try:
        importlib.import_module("readline")  # imported for its effect: line editing and history for input()
    except ImportError:
        pass
    names = " and ".join(session.active)
    console.print(f"[bold]mlxsft chat[/] · {escape(session.label)} · answering: {names}")
    console.print("[dim]/help for commands · Ctrl-C stops an answer · Ctrl-D or /quit leaves[/]")
    while True:
        try:
            line = input(PROMPT)
        except EOFError:
            console.print()
            break
        except KeyboardInterrupt:
            console.print("\n[dim](Ctrl-D or /quit leaves)[/]")
            continue
        if not line.strip():
            continue
        if parse_command(line) is not None:
            result = session.command(line)
            if result.quit:
                break
            if result.message:
                console.print(escape(result.message), style="red" if result.error else "dim")
            continue
        prompt = prompt_text(line)
        if len(session.active) > 1:
            _ask_compare(session, prompt)
        else:
            _ask_single(session, prompt)


class _Stream:
    """Passes streamed pieces on, without the whitespace a model may open its answer with."""

    def __init__(self, write: Callable[[str, str], None]):
        self.write, self.started = write, set()

    def __call__(self, name: str, piece: str) -> None:
        if name not in self.started:
            piece = piece.lstrip()
            if not piece:
                return
            self.started.add(name)
        self.write(name, piece)


def _write_stdout(name: str, piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


def _ask_single(session: ChatSession, prompt: str) -> None:
    with ctrl_c_stops_answer() as stop:
        turn = session.ask(prompt, on_text=_Stream(_write_stdout), should_stop=stop)
    answer = next(iter(turn.answers.values()))
    console.print()
    console.print(f"[dim]({_stats(answer)})[/]")


def _ask_compare(session: ChatSession, prompt: str) -> None:
    """Both answers side by side, streaming into their panels together (a token each in turn); Ctrl-C stops both."""
    names = list(session.active)
    texts = {n: "" for n in names}
    stats: dict[str, str] = {}

    def panels() -> Table:
        grid = Table.grid(expand=True, padding=(0, 1))
        for _ in names:
            grid.add_column(ratio=1)
        grid.add_row(*[Panel(Text(texts[n]), title=f"[bold]{n}[/]", subtitle=stats.get(n, "…"),
                             border_style="blue" if n == "tuned" else "white") for n in names])
        return grid

    def write(name: str, piece: str) -> None:
        texts[name] += piece

    with ctrl_c_stops_answer() as stop, Live(get_renderable=panels, console=console, refresh_per_second=12,
                                             vertical_overflow="visible") as live:
        turn = session.ask(prompt, on_text=_Stream(write), should_stop=stop)
        for n in names:
            answer = turn.answers.get(n)
            texts[n] = answer.text if answer else texts[n]
            stats[n] = _stats(answer) if answer else "skipped"
        live.refresh()


# ----------------------------------------------------------------------------- scripted
def run_script(session: ChatSession, lines: Iterable[str], as_json: bool) -> None:
    """One prompt per line; ``/commands`` work too. Plain answers, or one JSON object per line."""
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if parse_command(line) is not None:
            result = session.command(line)
            if result.quit:
                break
            if result.message:
                sys.stderr.write(("error: " if result.error else "") + result.message + "\n")
            continue
        prompt = prompt_text(line)
        if as_json or len(session.active) > 1:
            turn = session.ask(prompt)
            if as_json:
                sys.stdout.write(json.dumps(turn.to_json(), ensure_ascii=False) + "\n")
            else:
                for name, answer in turn.answers.items():
                    sys.stdout.write(f"[{name}] {answer.text}\n")
                sys.stdout.write("\n")
        else:
            session.ask(prompt, on_text=_Stream(_write_stdout))
            sys.stdout.write("\n\n")
        sys.stdout.flush()
