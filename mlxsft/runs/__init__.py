"""Run folders: what a training run writes, and the one reader of what it wrote.

A run folder holds everything a training run produces::

    runs/sft-20261129-0712/
      .mlxsft-run config.yaml chat_template.jinja base_model.txt inputs.json run_info.json (torch)
      adapter_config.json adapters.safetensors  metrics.jsonl  loss.png  compare.json  report.html
      setup.json data_summary.json (what the report shows: memory plan, versions, the data as trained)
      best/  checkpoints/step-00000100/  checkpoints/latest  .lock (while a training holds it)

- ``folder.py``: the marker, the checks before anything is deleted, the lock, leftovers of a kill
- ``checkpoints.py``: atomic checkpoint folders and the ``latest`` pointer
- ``metrics.py``: ``metrics.jsonl``
- ``read.py``: ``RunFolder``, the one reader used by ``train --resume``, chat, eval, export and report
- ``setup.py``: ``setup.json`` and ``data_summary.json``, written when training starts

Atomic writes and disk checks live in ``mlxsft/files.py``. The names below are re-exported so callers
import them from ``mlxsft.runs``.
"""

from mlxsft.runs.checkpoints import find_checkpoint, latest_checkpoint, recover_checkpoints, write_checkpoint
from mlxsft.runs.folder import (PARTIAL, RUN_MARKER, RunLock, check_out_dir, claim_run_dir,
                                default_run_dir, is_run_folder, partial_files, prepare_run_dir,
                                remove_partial_files)
from mlxsft.runs.metrics import MetricsLog

__all__ = ["MetricsLog", "PARTIAL", "RUN_MARKER", "RunLock", "check_out_dir", "claim_run_dir", "default_run_dir",
           "find_checkpoint",
           "is_run_folder", "latest_checkpoint", "partial_files", "prepare_run_dir", "recover_checkpoints",
           "remove_partial_files", "write_checkpoint"]
