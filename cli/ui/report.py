"""Terminal output of ``mlxsft report``: the one line naming the page it wrote."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from mlxsft.cli.ui import console


def print_written(path: Path) -> None:
    size = path.stat().st_size
    console.print(f"[bold green]✓[/] wrote {escape(str(path))} ({size / 1024:.0f} KB, self-contained: open it in "
                  f"any browser)", soft_wrap=True)
