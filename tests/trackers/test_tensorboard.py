"""--report-to tensorboard: tensorboard's EventAccumulator finds every metrics.jsonl number at its step."""

from __future__ import annotations

import yaml

from tests.trackers.conftest import assert_same_curves, expected_curves
from tests.trackers.readers import read_tensorboard


def test_the_event_files_hold_every_metric_at_its_step_and_the_config(tracked):
    run = tracked["run"]
    curves, config = read_tensorboard(run / "tensorboard")
    assert sorted(expected_curves(run)["train_loss"]) == [1, 2, 3, 4]  # two starts of the run: one curve
    assert {"val_loss", "val_ppl", "grad_norm", "learning_rate", "tokens_per_sec", "peak_memory_gb"} <= set(curves)
    assert_same_curves(curves, run, rel=1e-6)  # scalars are float32
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    logged = yaml.safe_load("\n".join(line[4:] for line in config.splitlines()))  # a markdown code block
    assert logged["train"]["report_to"] == ["tensorboard", "wandb", "mlflow", "trackio"]
    assert logged["optim"]["learning_rate"] == 3e-3
