"""--report-to wandb: offline (no API key here), the run's records read back with wandb's own protobuf, one run
id across a resume, and wandb's service process gone when the run ends."""

from __future__ import annotations

from tests.trackers.conftest import assert_same_curves
from tests.trackers.readers import read_wandb


def test_the_offline_run_holds_every_metric_and_the_config_and_a_resume_continues_it(tracked):
    run = tracked["run"]
    curves, config, ids = read_wandb(run / "wandb")
    assert_same_curves(curves, run, rel=1e-12)
    assert config["train"]["report_to"] == ["tensorboard", "wandb", "mlflow", "trackio"]
    assert config["data"]["max_seq_len"] == 64
    saved = (run / "trackers.json").read_text()
    assert len(ids) == 2 and len(set(ids)) == 1 and ids[0] in saved  # the resume logs to the same run
    assert any(m.startswith("wandb: offline run in ") for m in tracked["messages"])


def test_nothing_is_left_running_and_nothing_is_written_outside_the_run(tracked):
    assert "wandb-core" not in tracked["left"]["children"]
    assert tracked["left"]["threads"] == []
    home = tracked["home"]
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert not [p for p in written if any(w in p.lower() for w in ("wandb", "mlflow", "trackio", "tensorboard"))], \
        written
