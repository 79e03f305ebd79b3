"""Rendering for ``mlxsft convert`` and ``mlxsft doctor``.

``conversion_progress()`` yields the ``progress(stage, fraction)`` callback that ``mlxsft.models`` reports
through: a rich progress bar on a terminal, one plain line per stage otherwise (logs, CI, pipes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlxsft.cli.ui import console, is_interactive

if TYPE_CHECKING:
    from mlxsft.doctor import Section


@contextmanager
def conversion_progress(title: str) -> Iterator[Callable[[str, float], None]]:
    if not is_interactive():
        seen: set[str] = set()

        def log(stage: str, fraction: float) -> None:
            if stage not in seen:  # one line per stage, not per tensor
                seen.add(stage)
                console.print(f"{title}: {stage}", soft_wrap=True, markup=False)

        yield log
        return
    columns = (SpinnerColumn(), TextColumn("[bold]{task.fields[title]}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("starting", total=1.0, title=escape(title))

        def update(stage: str, fraction: float) -> None:
            bar.update(task, completed=fraction, description=escape(stage))

        yield update


def print_converted(out: Path) -> None:
    info = _read_json(out / "mlxsft.json")
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    quant = f"{info['quantize']}-bit, group size {info['group_size']}" if info.get("quantize") else "none"
    table = Table.grid(padding=(0, 2))
    table.add_row("[bold]MLX model[/]", escape(str(out)))
    table.add_row("source", escape(f"{info.get('name', '?')} ({info.get('kind', '?')}: {info.get('source', '?')})"))
    table.add_row("dtype", str(info.get("dtype", "?")))
    table.add_row("quantization", quant)
    table.add_row("chat template", "yes" if (out / "chat_template.jinja").is_file() or _has_inline_template(out)
                  else "none (base model)")
    table.add_row("size", f"{size / 2**20:.0f} MiB")
    console.print(table)
    console.print(f"try it: [cyan]mlx_lm.generate --model {escape(str(out))} --prompt hi[/]", soft_wrap=True)


def print_doctor(sections: list[Section]) -> None:
    for section in sections:
        table = Table(title=f"[bold]{escape(section.title)}[/]", title_justify="left", show_header=False,
                      box=None, padding=(0, 2))
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in section.rows:
            table.add_row(escape(key), escape(value))
        console.print(table)
        console.print()


def print_doctor_json(sections: list[Section]) -> None:
    console.print_json(json.dumps({s.title: dict(s.rows) for s in sections}))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _has_inline_template(out: Path) -> bool:
    return bool(_read_json(out / "tokenizer_config.json").get("chat_template"))
