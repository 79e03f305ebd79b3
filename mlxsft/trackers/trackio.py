"""``--report-to trackio``: trackio's local SQLite store in ``RUN/trackio/`` unless ``TRACKIO_DIR`` is set.

    TRACKIO_DIR=RUN/trackio trackio show --project mlxsft       # the dashboard, when you want it

trackio reads ``TRACKIO_DIR`` once, when it is first imported, so the store is set just before that import
(a second run in the same process keeps the first one's store; the ``message`` says where it went). Local
only: no Space and no dashboard server is started (``embed=False``; a Space only if the user's own
``TRACKIO_SPACE_ID`` asks for one), CPU/GPU sampling is off, and trackio's own prints are kept off the
terminal. trackio queues each ``log`` for its own sender thread, which ``finish`` drains.
"""

from __future__ import annotations

import contextlib
import io
from typing import Optional

from mlxsft.trackers.base import TrackerRun, env_defaults

LIBRARY = "trackio"


class Trackio:
    def __init__(self, run: TrackerRun):
        with env_defaults(TRACKIO_DIR=str(run.run_dir / "trackio")):  # no effect once trackio is imported
            import trackio
            import trackio.utils

        self._trackio = trackio
        with contextlib.redirect_stdout(io.StringIO()):
            self._run = trackio.init(project=run.project, name=run.name, config=run.config, resume="allow",
                                     embed=False, auto_log_cpu=False, auto_log_gpu=False)
        self.id: Optional[str] = None  # resumed by name (the run folder's) within the project
        store = trackio.utils.TRACKIO_DIR
        self.where = f"project {run.project!r}, run {run.name!r} in {store} (TRACKIO_DIR={store} trackio show)"

    def log(self, step: int, values: dict[str, float]) -> None:
        self._run.log(values, step=step)

    def close(self, ok: bool) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self._trackio.finish()  # drains the sender thread


def start(run: TrackerRun) -> Trackio:
    return Trackio(run)
