"""Rendering for ``mlxsft data``: validation problems, the rows table, stats, the token view, JSON lines.

Problem lines and ``--json`` rows are written as plain text (no wrapping, no markup), so they can be piped and
parsed; everything else is rich.
"""

from __future__ import annotations

import json
import sys

from rich.table import Table
from rich.text import Text

from mlxsft.cli.ui import console
from mlxsft.data.load import Validation
from mlxsft.data.records import Conversation, Example
from mlxsft.data.summary import token_spans

CELL = 400  # characters of a message shown in the rows table


def print_validation(report: Validation) -> None:
    for problem in report.problems:
        sys.stdout.write(f"{problem}\n")
    sys.stdout.flush()
    files = f"{len(report.files)} file{'s' * (len(report.files) != 1)}"
    if report.problems:
        n = len(report.problems)
        console.print(f"[bold red]✗[/] {n} problem{'s' * (n != 1)} in {report.bad_rows} of {report.rows} rows "
                      f"({files})", soft_wrap=True)
    else:
        console.print(f"[bold green]✓[/] {report.rows} rows ({files}): no problems", soft_wrap=True)


def print_rows(convs: list[Conversation], total: int) -> None:
    table = Table(show_lines=True, expand=True, title=f"{len(convs)} of {total} rows")
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("user", ratio=1)
    table.add_column("assistant", ratio=1)
    table.add_column("turns", justify="right", no_wrap=True)
    for i, conv in enumerate(convs):
        user, assistant = _first_exchange(conv)
        turns = sum(m["role"] == "assistant" for m in conv.messages)
        table.add_row(f"{i}\n[dim]{_short_source(conv.source)}[/]", user, assistant, str(turns) if turns else "—")
    console.print(table)


def _first_exchange(conv: Conversation) -> tuple[Text, Text]:
    if conv.text is not None:
        return Text(_clip(conv.text)), Text("(plain text: every token is learned)", style="dim italic")
    user = Text()
    system = next((m["content"] for m in conv.messages if m["role"] == "system"), None)
    if system:
        user.append(f"system: {_clip(system, 160)}\n", style="dim italic")
    first_user = next(i for i, m in enumerate(conv.messages) if m["role"] == "user")
    user.append(_clip(conv.messages[first_user]["content"]))
    reply = next(m for m in conv.messages[first_user:] if m["role"] == "assistant")
    assistant = Text()
    if reply.get("reasoning"):
        assistant.append(f"<think> {_clip(reply['reasoning'], 160)}\n", style="dim italic")
    assistant.append(_clip(reply["content"]), style="green")
    return user, assistant


def _clip(text: str, limit: int = CELL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_source(source: str) -> str:
    file, _, line = source.rpartition(":")
    return f"{file.rsplit('/', 1)[-1]}:{line}" if file else source


def print_stats(info: dict) -> None:
    t = Table(show_header=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    length = info["length"]
    t.add_row("source", f"{info['source']} [{info['split']}]")
    bad = info.get("invalid_rows") or 0
    t.add_row("rows", f"{info['rows']} used of {info['rows_in']}" + _dropped(info)
              + (f"; {bad} malformed row{'s' * (bad > 1)} left out (`mlxsft data validate` lists them)" if bad else ""))
    t.add_row("assistant turns", f"{info['assistant_turns']} ({info['multi_turn_rows']} multi-turn rows)")
    t.add_row("tokens", f"{info['total_tokens']:,} total, {info['supervised_tokens']:,} supervised "
              f"({info['supervised_fraction']:.1%}, train_on={info['train_on']})")
    t.add_row("row length", f"min {length['min']}, median {length['median']:.0f}, mean {length['mean']:.1f}, "
              f"p95 {length['p95']:.0f}, max {length['max']} (max_seq_len {info['max_seq_len']})")
    pad = info["padding"]
    t.add_row(f"padding (batch {info['batch_size']})",
              f"{pad['unpacked']['padding_fraction']:.1%} length-grouped ({pad['unpacked']['batches']} batches), "
              f"{pad['packed']['padding_fraction']:.1%} packed ({pad['packed']['batches']} batches)")
    console.print(t)
    console.print(Text("token-length histogram", style="bold"))
    peak = max((c for _, _, c in info["histogram"]), default=0) or 1
    width = max((len(f"{a}-{b}") for a, b, _ in info["histogram"]), default=0)
    for a, b, count in info["histogram"]:
        bar = "█" * round(40 * count / peak)
        console.print(f"  {f'{a}-{b}':>{width}} │[cyan]{bar}[/] {count}", soft_wrap=True)


def _dropped(info: dict) -> str:
    parts = [f"{info[k]} {label}" for k, label in (("truncated", "truncated"), ("dropped_overlong", "dropped as too long"),
                                                    ("no_supervised_rows", "with nothing supervised, left out"))
             if info.get(k)]
    return f" ({', '.join(parts)})" if parts else ""


def print_inspect(pieces: list[str], mask: list[int], *, row: int, source: str, max_seq_len: int, overlong: str,
                  total_rows: int) -> None:
    text = Text()
    spans = token_spans(pieces, mask, max_seq_len)
    for prev, span in zip([None, *spans], spans):
        if span.cut and not (prev and prev.cut):  # where max_seq_len cuts the row
            text.append(f"\n✂ max_seq_len={max_seq_len}: the rest is cut\n", style="bold red")
        style = "bold green on grey23" if span.supervised else "grey50"
        text.append(span.text, style=style + (" strike" if span.cut else ""))
    supervised = sum(mask[:max_seq_len])
    console.print(f"[bold]row {row}[/] of {total_rows} ({source}): {len(pieces)} tokens, {supervised} supervised "
                  f"([bold green on grey23]like this[/]), the rest context ([grey50]like this[/])", soft_wrap=True)
    console.print(text, soft_wrap=True)
    if len(pieces) > max_seq_len and overlong == "drop":
        console.print(f"[bold yellow]this row is over max_seq_len={max_seq_len} and is dropped (--overlong drop)[/]")
    elif not supervised:
        console.print("[bold yellow]this row has no supervised token and is left out of training[/]")


def print_json_rows(examples: list[Example]) -> None:
    out = sys.stdout
    for e in examples:
        out.write(json.dumps({"input_ids": e.input_ids.tolist(), "loss_mask": e.loss_mask.tolist()},
                             separators=(",", ":")) + "\n")
    out.flush()
