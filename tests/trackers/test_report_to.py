"""--report-to itself: the flag and field, the errors before any model loads, rank 0 only, closing on errors, and
a slow or broken tracker never holding up or stopping the training loop."""

from __future__ import annotations

import importlib
import sys
import threading
import time

import pytest

from mlxsft.config import TRACKERS, load_config
from mlxsft.distributed import World
from mlxsft.errors import ConfigError
from mlxsft.trackers import Trackers, check_trackers, open_trackers
from tests.helpers import run_cli


def one_line_error(r) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_a_comma_list_and_a_repeated_flag_both_give_the_list_and_leave_the_resume_hash_alone(tmp_path):
    cfg = load_config(None, {"report_to": ("tensorboard,wandb", "mlflow")})  # what click hands over
    assert cfg.train.report_to == ["tensorboard", "wandb", "mlflow"]
    assert cfg.hash() == load_config(None, {}).hash()
    (tmp_path / "c.yaml").write_text("train:\n  report_to: [trackio, tensorboard]\n")
    assert load_config(tmp_path / "c.yaml").train.report_to == ["trackio", "tensorboard"]
    (tmp_path / "d.yaml").write_text("report_to: wandb\n")
    assert load_config(tmp_path / "d.yaml").train.report_to == ["wandb"]
    assert load_config(None, {"target_modules": ("q_proj,v_proj",)}).lora.target_modules == ["q_proj", "v_proj"]


def test_an_unknown_tracker_is_a_one_line_error_from_the_flag_and_from_a_file(tmp_path):
    line = one_line_error(run_cli("train", "--report-to", "tensorboard,neptune", "--out", str(tmp_path / "run")))
    assert "report_to: 'neptune' is not one of tensorboard, wandb, mlflow, trackio" in line
    (tmp_path / "c.yaml").write_text("report_to: [comet]\n")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'c.yaml'}: report_to: 'comet' is not one of"):
        load_config(tmp_path / "c.yaml")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", TRACKERS)
def test_a_missing_library_names_its_extra(name, monkeypatch):
    library = importlib.import_module(f"mlxsft.trackers.{name}").LIBRARY
    monkeypatch.setitem(sys.modules, library, None)  # what `import` does when the package is not installed
    with pytest.raises(ConfigError) as e:
        check_trackers(["tensorboard", name] if name != "tensorboard" else [name])
    assert str(e.value) == f"--report-to {name} needs {library}: pip install 'mlxsft[{name}]'"


def test_a_missing_library_stops_the_command_before_the_model_loads(data_dir, tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['wandb'] = None  # as if not installed\n")
    # a model that does not exist: the error would name it, had the command got as far as loading it
    r = run_cli("train", "--model", str(tmp_path / "no-model"), "--data", str(data_dir), "--out", str(tmp_path / "run"),
                "--iters", "1", "--no-compare", "--backend", "mlx", "--report-to", "tensorboard,wandb",
                env={"PYTHONPATH": str(hide)})
    assert one_line_error(r).endswith("--report-to wandb needs wandb: pip install 'mlxsft[wandb]'")
    assert "model " not in r.stdout and not (tmp_path / "run").exists()


def test_only_rank_0_opens_trackers(tmp_path):
    cfg = load_config(None, {"report_to": list(TRACKERS)})
    with open_trackers(cfg, tmp_path, World(rank=1, size=2), resume=False) as trackers:
        assert trackers is None
    assert list(tmp_path.iterdir()) == []  # not even an import of a tracker library was needed
    with open_trackers(load_config(None, {"report_to": ["tensorboard"]}), tmp_path, World(), resume=False) as trackers:
        assert isinstance(trackers, Trackers)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_an_error_in_the_loop_closes_the_trackers_as_failed_with_what_was_logged(tmp_path):
    import json

    from tests.trackers.readers import read_mlflow, read_tensorboard

    cfg = load_config(None, {"report_to": ["tensorboard", "mlflow"]})
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C, or any exception out of the loop
        with open_trackers(cfg, tmp_path, World(), resume=False) as trackers:
            trackers.write({"step": 1, "train_loss": 2.5, "total_steps": 3})
            raise KeyboardInterrupt
    curves, run = read_mlflow(tmp_path / "mlruns", json.loads((tmp_path / "trackers.json").read_text())["mlflow"])
    assert run.info.status == "FAILED" and curves == {"train_loss": {1: 2.5}}
    assert read_tensorboard(tmp_path / "tensorboard")[0] == {"train_loss": {1: 2.5}}


class SlowTracker:
    id, where = None, "nowhere"

    def __init__(self, delay: float = 0.0, fail_at: int | None = None):
        self.delay, self.fail_at, self.logged, self.closed = delay, fail_at, [], None

    def log(self, step: int, values: dict[str, float]) -> None:
        time.sleep(self.delay)
        if step == self.fail_at:
            raise OSError("disk gone")
        self.logged.append((step, values))

    def close(self, ok: bool) -> None:
        self.closed = ok


def test_a_slow_tracker_never_holds_up_the_loop_and_still_gets_every_record():
    slow = SlowTracker(delay=0.05)
    trackers = Trackers({"slow": slow})
    start = time.perf_counter()
    for step in range(1, 21):
        trackers.write({"step": step, "train_loss": 1.0 / step, "epoch": 0.5, "total_steps": 20, "val_loss": None})
    queued = time.perf_counter() - start
    assert queued < 0.05  # 20 records queued in less time than the tracker takes for one
    assert trackers.close(ok=True) == []
    assert [s for s, _ in slow.logged] == list(range(1, 21)) and slow.closed is True
    assert slow.logged[1][1] == {"train_loss": 0.5, "epoch": 0.5}  # numbers only; step and total_steps aside
    assert not [t for t in threading.enumerate() if t.name == "mlxsft-trackers"]


def test_a_tracker_that_fails_stops_alone_and_says_so_at_the_end():
    broken, fine = SlowTracker(fail_at=2), SlowTracker()
    trackers = Trackers({"broken": broken, "fine": fine})
    for step in range(1, 5):
        trackers.write({"step": step, "train_loss": 1.0})
    problems = trackers.close(ok=True)
    assert problems == ["broken: logging stopped (OSError: disk gone)"]
    assert [s for s, _ in broken.logged] == [1] and [s for s, _ in fine.logged] == [1, 2, 3, 4]
    assert broken.closed is fine.closed is True


def test_every_tracker_name_is_a_module_with_a_library():
    import importlib

    for name in TRACKERS:
        module = importlib.import_module(f"mlxsft.trackers.{name}")
        assert isinstance(module.LIBRARY, str) and callable(module.start)
