"""``--report-to mlflow``: an MLflow run in a file store in ``RUN/mlruns/`` unless ``MLFLOW_TRACKING_URI`` is set.

    mlflow ui --backend-store-uri RUN/mlruns        # (MLFLOW_ALLOW_FILE_STORE=true with MLflow 3)

Through ``MlflowClient`` and an explicit run id, not the fluent ``mlflow.log_metric`` (whose active run belongs
to the thread that started it; ours logs from the trackers' thread). The file store is what mlflow-skinny can
write without SQLAlchemy; MLflow 3 keeps it behind ``MLFLOW_ALLOW_FILE_STORE``, which is set for it here.
MLflow's usage telemetry is off unless ``MLFLOW_DISABLE_TELEMETRY`` says otherwise: nothing reaches the network
from a local run. The config goes in as parameters (``train.learning_rate`` ...) and as ``config.yaml``.
"""

from __future__ import annotations

import os
import time
from typing import Optional

from mlxsft.trackers.base import TrackerRun, config_text, finite

LIBRARY = "mlflow"
PARAM_MAX = 500  # characters of a parameter value kept (MLflow's limit is larger; a long list says little)


class MLflow:
    def __init__(self, run: TrackerRun):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # read when mlflow is first imported
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # read each time a file store is built
            uri = (run.run_dir / "mlruns").resolve().as_uri()
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        self._metric = Metric
        self.client = MlflowClient(tracking_uri=uri)
        existing = self._existing(run.saved_id)
        if existing is not None:
            self.id: Optional[str] = existing
            self.client.update_run(existing, status="RUNNING")
        else:
            experiment = self.client.get_experiment_by_name(run.project)
            eid = experiment.experiment_id if experiment else self.client.create_experiment(run.project)
            self.id = self.client.create_run(eid, run_name=run.name,
                                             tags={"mlxsft.run_dir": str(run.run_dir)}).info.run_id
            params = [Param(f"{sec}.{k}", str(v)[:PARAM_MAX]) for sec, fields in run.config.items()
                      for k, v in fields.items()]
            self.client.log_batch(self.id, params=params)
            self.client.log_text(self.id, config_text(run.config), "config.yaml")
        ui = f" (mlflow ui --backend-store-uri {run.run_dir / 'mlruns'})" if uri.startswith("file:") else ""
        self.where = f"run {self.id} in {uri}{ui}"

    def _existing(self, run_id: Optional[str]) -> Optional[str]:
        if not run_id:
            return None
        try:
            return self.client.get_run(run_id).info.run_id
        except Exception:  # gone, or another store: start a new run
            return None

    def log(self, step: int, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.id, metrics=[self._metric(k, v, now, step) for k, v in finite(values).items()])

    def close(self, ok: bool) -> None:
        self.client.set_terminated(self.id, status="FINISHED" if ok else "FAILED")


def start(run: TrackerRun) -> MLflow:
    return MLflow(run)
