"""All terminal output of mlxsft lives in this package (rich). The library never prints.

``console`` writes to stdout, ``err_console`` to stderr. Sub-modules render one command family each
(``ui.train``, ``ui.data``, ``ui.models``); they share the helpers here.
"""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def is_interactive() -> bool:
    """True when stdout is a terminal: live panels then, plain log lines otherwise."""
    return console.is_terminal


def print_error(message: str) -> None:
    """One line on stderr, no traceback."""
    line = " ".join(message.split())
    if err_console.is_terminal:
        err_console.print(f"[bold red]error:[/] {line}", soft_wrap=True)
    else:
        sys.stderr.write(f"error: {line}\n")
        sys.stderr.flush()


def print_warning(message: str) -> None:
    line = " ".join(message.split())
    if err_console.is_terminal:
        err_console.print(f"[yellow]warning:[/] {line}", soft_wrap=True)
    else:
        sys.stderr.write(f"warning: {line}\n")
