"""Two MLX processes on localhost (``mlx.launch``, ring backend on loopback) train the weights one process does,
and checkpoints move between 1 and 2 processes in both directions.

The optimizer here is SGD: Adam divides each update by sqrt(v), which turns float rounding in near-zero
gradients into visible weight differences (measured after 4 steps: 1.7e-5 with AdamW, 9e-10 with SGD, for
the same gradients), and it is blind to a gradient scaled by a constant. SGD shows the gradient itself is
the single-process one. 7 rows with batch_size 4 make every epoch end on a 3-row batch, which 2 ranks
split as 2 + (1 + an empty row).

Each ``mlx.launch`` costs two process start-ups (~30 s on a loaded 2-core box), so one launch checks
several things. A fresh start on several processes (rank 1 creates no run folder) is the same code for
both backends (``mlxsft/train.py``) and is checked with torchrun in ``test_torch_distributed.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlxsft.config import load_config
from mlxsft.runs import MetricsLog
from mlxsft.train import resolve_resume, run_training
from tests.helpers import ROWS, write_data
from tests.distributed.launch import assert_ok, copies_per_rank, mlx_launch, mlx_launch_command, snapshot

HERE = Path(__file__).parent


def options(model: Path, data: Path, iters: int) -> dict:
    return dict(model=str(model), data=str(data), compare=False, iters=iters, batch_size=4, optimizer="sgd",
                learning_rate=0.2, warmup=0, lr_schedule="constant", eval_every=0, save_every=1,
                report_every=1, max_seq_len=64, seed=0, backend="mlx")


def weights(path: Path) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in mx.load(str(path)).items()}


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"), rows=ROWS[:7])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_llama_dir, data_dir) -> Path:
    """One process, 3 steps (an epoch is a batch of 4 rows and one of 3); checkpoints kept at steps 2 and 3."""
    run = tmp_path_factory.mktemp("one") / "run"
    run_training(load_config(None, dict(options(tiny_llama_dir, data_dir, 3), out=str(run))))
    return run


def test_mlx_collectives_across_two_processes():
    r = mlx_launch_command([sys.executable, str(HERE / "mlx_collectives.py")])
    assert_ok(r)
    results = sorted((json.loads(ln.split(" ", 1)[1]) for ln in r.stdout.splitlines() if ln.startswith("RESULT ")),
                     key=lambda x: x["rank"])
    assert [x["rank"] for x in results] == [0, 1]
    for x in results:
        assert x["size"] == 2 and x["sum"] == 3.0 and x["any_one"] and not x["any_none"]
        assert x["average"] == [0.5, 1.0] and x["stop_agreed"]  # rank 1's Ctrl-C stops rank 0 too


def test_a_run_moves_from_one_process_to_two_and_back_with_the_weights_of_one(tiny_llama_dir, data_dir,
                                                                              reference, tmp_path):
    """Step 1 on one process, step 2 on two (``mlx.launch``), step 3 on one again: the reference's weights
    at every checkpoint. Each rank resumes its own copy of the run, and rank 1 changes nothing in its copy."""
    first = tmp_path / "first"
    run_training(load_config(None, dict(options(tiny_llama_dir, data_dir, 1), out=str(first))))
    untouched = copies_per_rank(first, tmp_path / "run-")
    r = mlx_launch(["train", "--iters", "2"], per_rank=("--resume", tmp_path / "run-"))
    assert_ok(r)
    assert snapshot(tmp_path / "run-1") == untouched  # rank 1 read its copy and wrote nothing
    run = tmp_path / "run-0"
    assert_same_weights(run / "adapters.safetensors", reference / "checkpoints/step-00000002/adapters.safetensors")
    assert r.stdout.count("step 2/2") == 1  # rank 0 alone reports
    assert "2 processes: each takes 2 of the 4 rows of every micro-batch" in r.stdout

    cfg, _ = resolve_resume(str(run), {"iters": 3}, None)
    assert run_training(cfg, resume=True).result.steps == 3
    assert_same_weights(run / "adapters.safetensors", reference / "adapters.safetensors")
    records = MetricsLog(run / "metrics.jsonl").read()
    assert [m["step"] for m in records if m.get("train_loss") is not None] == [1, 2, 3]  # each step logged once
    assert [m["step"] for m in records if m.get("val_loss") is not None] == [1, 2, 3]  # rank 0 evaluated step 2
    state = json.loads((run / "checkpoints/step-00000003/state.json").read_text())
    assert state["step"] == 3 and state["trained_tokens"] == json.loads(
        (reference / "checkpoints/step-00000003/state.json").read_text())["trained_tokens"]


def test_fsdp_is_refused_on_mlx():
    from mlxsft.backends.mlx.backend import MLXBackend
    from mlxsft.errors import ConfigError

    with pytest.raises(ConfigError, match="fsdp: sharding is a torch backend feature"):
        MLXBackend(load_config(None, dict(fsdp=True)), lambda e, p: None)
