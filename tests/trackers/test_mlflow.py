"""--report-to mlflow: a file store in RUN/mlruns, read back with MlflowClient; one run across a resume."""

from __future__ import annotations

import json

from tests.trackers.conftest import assert_same_curves
from tests.trackers.readers import read_mlflow


def test_the_run_holds_every_metric_history_and_the_config_as_parameters(tracked):
    run = tracked["run"]
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]
    curves, found = read_mlflow(run / "mlruns", run_id)
    assert_same_curves(curves, run, rel=1e-12)
    assert found.info.status == "FINISHED" and found.info.run_name == run.name
    assert found.data.params["optim.learning_rate"] == "0.003"
    assert found.data.params["train.report_to"] == "['tensorboard', 'wandb', 'mlflow', 'trackio']"
