"""``--report-to wandb``: Weights & Biases, offline in ``RUN/wandb/`` unless you are logged in.

Offline (``mode="offline"``) whenever no API key is at hand (``WANDB_API_KEY`` or a ``~/.netrc`` entry that
``wandb login`` wrote) and ``WANDB_MODE`` is unset, so a machine without network never waits on one;
``wandb sync RUN/wandb/offline-run-*`` uploads such a run later. ``WANDB_MODE``, ``WANDB_DIR`` and
``WANDB_PROJECT`` win when set. wandb's own service process (``wandb-core``) is started for the run and
stopped at its end (``wandb.teardown``), so nothing outlives the run; its log and cache go in ``RUN/wandb/``
too. Console capture and system metrics are off: the first fights the live panel, the second costs CPU.
"""

from __future__ import annotations

import os
from typing import Optional
from urllib.parse import urlparse

from mlxsft.trackers.base import TrackerRun

LIBRARY = "wandb"


def logged_in() -> bool:
    """An API key is at hand without asking the network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc

    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandB:
    def __init__(self, run: TrackerRun):
        import wandb

        from mlxsft.trackers.base import env_defaults

        self._wandb = wandb
        folder = run.run_dir / "wandb"
        mode = None if os.environ.get("WANDB_MODE") or logged_in() else "offline"
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, disable_git=True,
                                  disable_code=True, x_save_requirements=False)
        # offline in the environment too, not only in init's settings: wandb's own usage telemetry reads it,
        # and otherwise starts threads that try to reach wandb.ai at exit
        offline = {"WANDB_MODE": "offline"} if mode else {}
        with env_defaults(WANDB_CACHE_DIR=str(folder / "cache"), WANDB_DATA_DIR=str(folder / "data"), **offline):
            self._run = wandb.init(project=os.environ.get("WANDB_PROJECT") or run.project, name=run.name,
                                   id=run.saved_id, resume="allow", config=run.config, mode=mode, settings=settings,
                                   dir=None if os.environ.get("WANDB_DIR") else str(run.run_dir))
        self.id: Optional[str] = self._run.id
        self.where = (f"offline run in {self._run.dir.rsplit('/files', 1)[0]} (wandb sync uploads it)"
                      if self._run.offline else f"run {self._run.url}")

    def log(self, step: int, values: dict[str, float]) -> None:
        self._run.log(values, step=step)

    def close(self, ok: bool) -> None:
        try:
            self._run.finish(exit_code=0 if ok else 1)
        finally:
            self._wandb.teardown()  # stops wandb-core now, not at interpreter exit


def start(run: TrackerRun) -> WandB:
    return WandB(run)
