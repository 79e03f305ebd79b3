"""--report-to trackio: the local SQLite store in RUN/trackio, read back with trackio's SQLiteStorage."""

from __future__ import annotations

from tests.trackers.conftest import assert_same_curves
from tests.trackers.readers import read_trackio


def test_the_local_store_holds_every_metric_and_the_config_in_one_run(tracked):
    run = tracked["run"]
    curves, config, runs = read_trackio(run / "trackio", "mlxsft", run.name)
    assert_same_curves(curves, run, rel=1e-12)
    assert runs == [run.name]  # the resume continued the run
    assert config["train"]["report_to"] == ["tensorboard", "wandb", "mlflow", "trackio"]
    assert "Trackio" not in tracked["printed"]  # trackio's own prints stay off the terminal
