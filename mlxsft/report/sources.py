"""What ``mlxsft report`` reads: run folders (through ``mlxsft.runs.read``) and curation reports (JSON).

    inputs = [open_input(p) for p in ("runs/a", "runs/b", "clean.report.json")]   # RunView | CurationView

A run folder is read with the one reader chat, eval and export use (``RunFolder``, ``read_metrics``,
``read_json``, ``run_config``), plus the facts training writes for this page (``setup.json``,
``data_summary.json``: ``mlxsft/runs/setup.py``). A run stopped before its first checkpoint has no tuned
weights and is still shown. Whatever a folder lacks is listed in ``missing``, for the page to say, never to fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from mlxsft.errors import RunError
from mlxsft.runs.read import RunFolder, read_json, read_metrics, run_backend, run_config, run_root
from mlxsft.runs.setup import DATA_SUMMARY_FILE, SETUP_FILE


@dataclass
class RunView:
    path: Path  # the run root
    name: str
    backend: str
    method: str
    base_model: str
    config: Any  # mlxsft.config.Config
    metrics: list[dict[str, Any]]
    compare: Any = None  # mlxsft.evaluate.CompareReport
    setup: Optional[dict[str, Any]] = None
    data: Optional[dict[str, Any]] = None
    has_weights: bool = True
    checkpoint_step: Optional[int] = None  # the latest checkpoint's step (a Ctrl-C saves one past the last log)
    ident: str = "r0"  # set by the page: the run's id in the HTML (data-run)
    color: str = "#4e79a7"

    @property
    def train_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.metrics if r.get("train_loss") is not None]

    @property
    def val_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.metrics if r.get("val_loss") is not None]

    @property
    def label(self) -> str:
        """The legend's name: run folder and method, e.g. "seed-0 · lora"."""
        return f"{self.name} · {self.method}"


@dataclass
class CurationView:
    path: Path
    kind: str  # "filter" | "best-of-k"
    report: dict[str, Any]
    ident: str = "c0"
    missing: list[str] = field(default_factory=list)


Input = Union[RunView, CurationView]


def open_input(path: str | Path) -> Input:
    """A run folder, or a ``data filter --report`` / ``best-of-k --report`` JSON file."""
    path = Path(path).expanduser()
    if path.is_dir():
        return open_run(path)
    if not path.is_file():
        raise RunError(f"{path}: not found (give a run folder or a curation report .json)")
    return open_curation(path)


def open_run(path: Path) -> RunView:
    from mlxsft.evaluate import CompareReport

    if run_root(path) is None:
        raise RunError(f"{path}: not a run folder (no config.yaml here or in the two folders above)")
    try:
        run = RunFolder.open(path, purpose="report")
        root, backend, method, base, config, has_weights = (run.run_dir, run.backend, run.method, run.base_model,
                                                            run.config, True)
        metrics, compare = run.metrics, run.compare
    except RunError:
        root = run_root(path)
        # a run stopped before its first checkpoint: no weights yet, but its config and metrics are worth a page
        config = run_config(root)
        root, backend, method, base, has_weights = root, run_backend(root), config.lora.method, config.model.model, False
        metrics, compare = read_metrics(root), read_json(root / "compare.json")
    return RunView(path=root, name=root.resolve().name or str(root), backend=backend, method=method,
                   base_model=base, config=config, metrics=metrics,
                   compare=CompareReport.from_dict(compare) if compare else None,
                   setup=read_json(root / SETUP_FILE), data=read_json(root / DATA_SUMMARY_FILE),
                   has_weights=has_weights, checkpoint_step=_checkpoint_step(root))


def _checkpoint_step(root: Path) -> Optional[int]:
    from mlxsft.runs import find_checkpoint

    found = find_checkpoint(root)
    try:
        return int(found.name.rsplit("-", 1)[-1]) if found is not None else None
    except ValueError:
        return None


def open_curation(path: Path) -> CurationView:
    report = read_json(path)
    if report is None:
        raise RunError(f"{path}: not a JSON object (give a run folder or a curation report .json)")
    if "removed" in report and "rows_in" in report:
        from mlxsft.curate.filtering import FilterReport

        return CurationView(path=path, kind="filter", report=FilterReport.from_dict(report).to_dict())
    if "best_scores" in report and "candidate_scores" in report:
        return CurationView(path=path, kind="best-of-k", report=report)
    raise RunError(f"{path}: neither a `data filter --report` nor a `data best-of-k --report` file "
                   f"(no 'removed' or 'best_scores' field)")
