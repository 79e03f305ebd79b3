"""Experiment trackers behind ``--report-to``: tensorboard, wandb, mlflow, trackio (each an optional extra).

    check_trackers(cfg.train.report_to)          # before the model loads: a missing library is a ConfigError
    with open_trackers(cfg, run_dir, world, resume=False, emit=emit) as trackers:   # a no-op on ranks > 0
        fit(engine, train, valid, trackers=trackers)   # MetricsLog hands each metrics.jsonl record on

Each tracker gets what ``metrics.jsonl`` gets: every numeric field of every step and eval record, by step,
under the same names, plus the resolved config once. The training loop only puts records on a queue; one
background thread hands them to the trackers, so a slow tracker (a file store, a socket to wandb's service)
never holds up a step. Trackers write inside the run folder unless the user's own environment says otherwise
(``WANDB_DIR`` / ``WANDB_MODE``, ``MLFLOW_TRACKING_URI``, ``TRACKIO_DIR``): ``RUN/tensorboard/``,
``RUN/wandb/`` (offline unless logged in), ``RUN/mlruns/`` and ``RUN/trackio/``. A resumed run continues the
same tracker runs: their ids are kept in ``RUN/trackers.json``.

One module per tracker, ``mlxsft/trackers/<name>.py``: ``LIBRARY`` (what to import) and ``start(TrackerRun)``
returning a ``Tracker`` (``base.py``). Nothing here prints; what each tracker writes where is a ``message``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import queue
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from mlxsft.config import TRACKERS, Config
from mlxsft.errors import ConfigError, RunError
from mlxsft.trackers.base import Tracker, TrackerRun, scalars

IDS_FILE = "trackers.json"  # each tracker's run id, so a resume logs to the same tracker run
PROJECT = "mlxsft"  # the wandb project, mlflow experiment and trackio project (the run is the run folder's name)
CLOSE_TIMEOUT_S = 60.0  # the most a run waits at its end for a tracker to take the queued records


def _module(name: str) -> Any:
    if name not in TRACKERS:  # config.py checks the names; this guards a Config built in code
        raise ConfigError(f"report_to: {name!r} is not one of {', '.join(TRACKERS)}")
    return importlib.import_module(f"mlxsft.trackers.{name}")


def check_trackers(names: list[str]) -> None:
    """Each tracker named is known and its library installed (found, not imported: that waits for the run)."""
    for name in names:
        library = _module(name).LIBRARY
        try:
            found = importlib.util.find_spec(library) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(f"--report-to {name} needs {library}: pip install 'mlxsft[{name}]'")


class Trackers:
    """The open trackers behind one queue: ``write`` (a metrics.jsonl record) returns at once, a daemon thread
    logs, ``close`` waits for the queue (at most ``CLOSE_TIMEOUT_S``) and closes every tracker."""

    def __init__(self, trackers: dict[str, Tracker]):
        self.trackers = trackers
        self.failed: dict[str, str] = {}  # tracker -> the error that stopped its logging
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="mlxsft-trackers", daemon=True)
        self._thread.start()

    def write(self, record: dict[str, Any]) -> None:
        self._queue.put(record)

    def _drain(self) -> None:
        while (record := self._queue.get()) is not None:
            values = scalars(record)
            if not values or "step" not in record:
                continue
            for name, tracker in self.trackers.items():
                if name in self.failed:
                    continue
                try:
                    tracker.log(int(record["step"]), values)
                except Exception as e:  # a tracker's own failure must not stop the training
                    self.failed[name] = f"{type(e).__name__}: {e}"

    def close(self, ok: bool) -> list[str]:
        """Flush and close every tracker; returns a line for each problem (the caller reports them)."""
        self._queue.put(None)
        self._thread.join(CLOSE_TIMEOUT_S)
        problems = [f"{n}: logging stopped ({why})" for n, why in self.failed.items()]
        if self._thread.is_alive():
            problems.append(f"trackers: records still queued after {CLOSE_TIMEOUT_S:.0f} s were not logged")
        for name, tracker in self.trackers.items():
            try:
                tracker.close(ok)
            except Exception as e:
                problems.append(f"{name}: could not close ({type(e).__name__}: {e})")
        return problems


@contextmanager
def open_trackers(cfg: Config, run_dir: Path, world: Any, *, resume: bool, start_step: int = 0,
                  emit: Callable[[str, dict], None] = lambda e, p: None) -> Iterator[Optional[Trackers]]:
    """The trackers of ``cfg.train.report_to`` on rank 0 (None elsewhere and when none is asked for), closed on
    the way out: finished after a clean end (a first Ctrl-C included), failed after an exception."""
    names = list(dict.fromkeys(cfg.train.report_to))
    if not names or not world.is_main:
        yield None
        return
    ids_path = Path(run_dir) / IDS_FILE
    saved = _read_ids(ids_path) if resume else {}
    opened: dict[str, Tracker] = {}
    try:
        for name in names:
            run = TrackerRun(run_dir=Path(run_dir), name=Path(run_dir).name, project=PROJECT, config=cfg.to_dict(),
                             resumed_at=start_step if resume else None, saved_id=saved.get(name))
            try:
                opened[name] = _module(name).start(run)
            except ImportError as e:  # found but broken (a dependency of it missing)
                raise ConfigError(f"--report-to {name}: {e} (pip install 'mlxsft[{name}]')") from None
            except Exception as e:
                raise RunError(f"--report-to {name}: could not start ({type(e).__name__}: {e})") from None
            emit("message", {"text": f"{name}: {opened[name].where}"})
    except BaseException:
        for tracker in opened.values():
            tracker.close(False)
        raise
    ids = {n: t.id for n, t in opened.items() if t.id}
    if ids and ids != {k: saved.get(k) for k in ids}:
        from mlxsft.files import atomic_write_json

        atomic_write_json(ids_path, {**saved, **ids})
    trackers = Trackers(opened)
    ok = False
    try:
        yield trackers
        ok = True
    finally:
        for line in trackers.close(ok):
            emit("message", {"text": line})


def _read_ids(path: Path) -> dict[str, str]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}
