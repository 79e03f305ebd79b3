"""The experiments' progress callback: ``callback(event, payload)``, rendered by ``cli/ui/experiment.py``.

Events and what their payload holds:
  ``stage``      ``text``: a step of the experiment (building the pool, curating, ...)
  ``arm_start``  ``arm``, ``seed``, ``index``, ``total``: an arm starts training
  ``train``      ``arm``, ``seed``, ``event``, ``payload``: one of ``mlxsft.train``'s events for that arm
  ``arm_done``   ``result`` (an ``ArmResult``), ``cached`` (read back from an earlier run, not retrained)
  ``done``       ``out``: the folder holding results.json, table.md and the plots
"""

from __future__ import annotations

from typing import Callable, Literal

ExperimentEvent = Literal["stage", "arm_start", "train", "arm_done", "done"]
Callback = Callable[[str, dict], None]


def silent(event: str, payload: dict) -> None:
    pass
