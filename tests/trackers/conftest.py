"""One run logged to all four trackers, shared by the tests of this folder: 2 steps, then a resume to step 4,
in this process (so a test can see what is left running after it) with an empty home folder. Each test reads
one tracker back with that tracker's own library; test_report_to.py runs the command line."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path

import pytest

TRACKER_ENV = ("WANDB_", "MLFLOW_", "TRACKIO_")  # the user's own tracker settings would send the logs elsewhere


# Session scope, not package: once per process. Under pytest-xdist a worker that leaves this folder for another
# tears a package fixture down and builds it again on its return, and trackio, already imported, keeps the
# first build's store (mlxsft/trackers/trackio.py), so the second build's curves would land in the first's.
@pytest.fixture(scope="session")
def tracked(tmp_path_factory, tiny_llama_dir):
    """Two starts of one run, in this process: 2 steps with all four trackers, then a resume to step 4."""
    from mlxsft.config import load_config
    from mlxsft.train import resolve_resume, run_training
    from tests.helpers import write_data

    root = tmp_path_factory.mktemp("tracked")
    data, run, home = write_data(root / "data"), root / "run", root / "home"
    home.mkdir()
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(TRACKER_ENV + ("HOME",))}
    os.environ["HOME"] = str(home)  # where wandb, mlflow and trackio would write unasked
    threads_before = set(threading.enumerate())
    messages: list[str] = []
    printed = io.StringIO()

    def on_event(event: str, payload: dict) -> None:
        if event == "message":
            messages.append(payload["text"])

    try:
        with contextlib.redirect_stdout(printed):
            cfg = load_config(None, dict(model=str(tiny_llama_dir), data=str(data), out=str(run), compare=False,
                                         iters=2, batch_size=2, learning_rate=3e-3, max_seq_len=64, report_every=1,
                                         eval_every=2, save_every=2, backend="mlx",
                                         report_to=("tensorboard,wandb", "mlflow", "trackio")))
            run_training(cfg, callback=on_event)
            cfg, _ = resolve_resume(str(run), {"iters": 4}, None)
            run_training(cfg, resume=True, callback=on_event)
    finally:
        os.environ.pop("HOME")
        os.environ.update(saved)
    left = {"threads": [t.name for t in set(threading.enumerate()) - threads_before if t.is_alive()],
            "children": _children()}
    return {"run": run, "home": home, "printed": printed.getvalue(), "messages": messages, "left": left}


def _children() -> list[str]:
    import psutil

    return [p.name() for p in psutil.Process().children(recursive=True)]


def expected_curves(run: Path) -> dict[str, dict[int, float]]:
    """metrics.jsonl as {metric: {step: value}}: what every tracker must hold."""
    from mlxsft.runs import MetricsLog
    from mlxsft.trackers.base import scalars

    out: dict[str, dict[int, float]] = {}
    for record in MetricsLog(run / "metrics.jsonl").read():
        for k, v in scalars(record).items():
            out.setdefault(k, {})[record["step"]] = v
    return out


def assert_same_curves(found: dict, run: Path, rel: float = 1e-6) -> None:
    want = expected_curves(run)
    assert set(found) == set(want), (sorted(found), sorted(want))
    for k in want:
        assert sorted(found[k]) == sorted(want[k]), k
        for step, v in want[k].items():
            assert found[k][step] == pytest.approx(v, rel=rel), (k, step)
