"""``mlxsft report``: one self-contained HTML page for a run, several runs side by side, or curation reports.

    mlxsft report runs/sft-20261129-0712                 # writes runs/sft-20261129-0712/report.html
    mlxsft report runs/a runs/b --out compare.html --open
    mlxsft report clean.report.json best.report.json     # `data filter --report` / `best-of-k --report` files

The page needs no network (inline SVG, CSS and a few lines of script): curves, the data as the model saw it,
the before/after questions, the memory plan against the peak, versions and the commands to go on.
Training writes the same page into every run folder at its end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click


@click.command(context_settings={"max_content_width": 110})
@click.argument("inputs", nargs=-1, required=True, metavar="RUN_OR_REPORT...")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None, metavar="FILE.html",
              help="Where to write the page [default: RUN/report.html for one run, REPORT.html for one curation "
                   "report, ./report.html for several].")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default browser.")
def report(inputs: tuple[str, ...], out: Optional[str], open_page: bool) -> None:
    """Write an HTML report of runs (overlaid when several) and curation reports."""
    from mlxsft.cli.ui.report import print_written
    from mlxsft.report import default_out, write_report

    paths = [Path(p) for p in inputs]
    written = write_report(paths, Path(out) if out else default_out(paths))
    print_written(written)
    if open_page:
        import webbrowser

        webbrowser.open(written.resolve().as_uri())
