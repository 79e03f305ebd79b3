"""Self-contained HTML pages for runs and curation reports (``mlxsft report``; training writes ``report.html``).

    from mlxsft.report import write_report
    write_report([Path("runs/sft-0712")], Path("runs/sft-0712/report.html"))

- ``page.py``: one page from inputs, written atomically
- ``sources.py``: reading run folders (``mlxsft.runs.read``) and curation report JSON
- ``run_page.py``: a run's summary, then ``curves.py``, ``questions.py``, ``data_view.py``, ``setup_view.py``
- ``curation_page.py``: ``data filter`` and ``best-of-k`` reports
- ``svg.py`` (charts), ``downsample.py`` (long curves), ``html.py`` (escaping, tables, the inline CSS and JS)
"""

from mlxsft.report.page import REPORT_FILE, build_page, default_out, write_report

__all__ = ["REPORT_FILE", "build_page", "default_out", "write_report"]
