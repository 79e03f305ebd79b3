"""One report page from run folders and curation reports: what ``mlxsft report`` and training write.

    html = build_page([Path("runs/a"), Path("runs/b")])
    write_report([Path("runs/a")], Path("runs/a/report.html"))     # atomic; returns the path
    default_out([Path("runs/a")])                                   # runs/a/report.html
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mlxsft import __version__
from mlxsft.errors import RunError
from mlxsft.files import atomic_write_text
from mlxsft.report.curation_page import curation_section
from mlxsft.report.html import esc, page
from mlxsft.report.run_page import run_sections, subtitle
from mlxsft.report.sources import CurationView, RunView, open_input
from mlxsft.report.svg import PALETTE

REPORT_FILE = "report.html"


def build_page(paths: Sequence[Path]) -> str:
    if not paths:
        raise RunError("give at least one run folder or curation report")
    inputs = [open_input(p) for p in paths]
    runs = [i for i in inputs if isinstance(i, RunView)]
    curations = [i for i in inputs if isinstance(i, CurationView)]
    _name_runs(runs)
    for n, c in enumerate(curations):
        c.ident = f"c{n}"
    body = run_sections(runs) if runs else ""
    body += "".join(curation_section(c) for c in curations)
    if runs:
        title = f"mlxsft report: {runs[0].name}" if len(runs) == 1 else f"mlxsft report: {len(runs)} runs"
        sub = subtitle(runs)
    else:
        title = "mlxsft report: " + ", ".join(c.path.name for c in curations)
        sub = ", ".join(f"{c.kind} report {c.path}" for c in curations)
    return page(title, body, subtitle=f"{sub} · mlxsft {esc(__version__)}")


def _name_runs(runs: list[RunView]) -> None:
    """Page ids and colours; runs whose folders share a name are told apart by their parent folder."""
    names = [r.name for r in runs]
    for n, run in enumerate(runs):
        run.ident, run.color = f"r{n}", PALETTE[n % len(PALETTE)]
        if names.count(run.name) > 1:
            run.name = f"{run.path.resolve().parent.name}/{run.name}"


def write_report(paths: Sequence[Path], out: Path) -> Path:
    html = build_page(paths)
    out = Path(out)
    if out.is_dir():
        raise RunError(f"{out}: is a folder (give a file name for --out)")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, html)
    return out


def default_out(paths: Sequence[Path]) -> Path:
    """One run: its folder's report.html; one curation report: the same name with .html; else ./report.html."""
    if len(paths) == 1:
        p = Path(paths[0])
        if p.is_dir():
            return p / REPORT_FILE
        return p.with_suffix(".html")
    return Path(REPORT_FILE)
