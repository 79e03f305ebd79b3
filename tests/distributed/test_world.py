"""The engine-neutral part of distributed training, in one process: batch slices, launcher detection, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from mlxsft.backends.loop import Interrupt
from mlxsft.data.batching import Batch
from mlxsft.distributed import World, check_launcher, launch_rank, launcher
from mlxsft.errors import ConfigError


def batch(rows: int, length: int = 8) -> Batch:
    ids = np.arange(rows * length, dtype=np.int32).reshape(rows, length) + 1
    mask = np.ones((rows, length), np.int8)
    seg = np.ones((rows, length), np.int32)
    seg[:, length // 2:] = 2  # two packed rows per sequence
    return Batch(input_ids=ids, loss_mask=mask, segment_ids=seg, n_rows=2 * rows)


def test_each_rank_takes_its_rows_and_together_they_cover_the_batch():
    b = batch(4)
    parts = [World(rank, 2).shard(b) for rank in range(2)]
    np.testing.assert_array_equal(np.concatenate([p.input_ids for p in parts]), b.input_ids)
    np.testing.assert_array_equal(parts[0].input_ids, b.input_ids[:2])
    np.testing.assert_array_equal(parts[1].loss_mask, b.loss_mask[2:])
    assert [p.n_rows for p in parts] == [4, 4]


def test_a_short_batch_is_topped_up_with_empty_rows_so_every_rank_runs_the_same_shape():
    b = batch(3)  # the end of an epoch: 3 rows for 2 ranks
    first, second = World(0, 2).shard(b), World(1, 2).shard(b)
    assert first.input_ids.shape == second.input_ids.shape == (2, 8)
    np.testing.assert_array_equal(second.input_ids[0], b.input_ids[2])
    assert second.loss_mask[1].sum() == 0 and second.segment_ids[1].sum() == 0  # no tokens, no loss
    assert second.n_rows == 2
    lone = World(3, 4).shard(batch(2))  # a rank past the end gets only empty rows
    assert lone.input_ids.shape == (1, 8) and lone.loss_mask.sum() == 0 and lone.n_rows == 0


def test_one_process_is_a_no_op_world():
    w, b = World(), batch(3)
    assert w.shard(b) is b and w.is_main and w.evaluates and w.grad_scale == 1.0
    assert w.sum(2.5) == 2.5 and w.any(True) and not w.any(False)
    assert not World(1, 2).is_main and not World(1, 2).evaluates and World(1, 2, sharded=True).evaluates


def test_batch_size_must_split_evenly():
    World(0, 2).check_batch_size(8)
    with pytest.raises(ConfigError, match="batch_size: 6 rows cannot be split evenly over 4 processes"):
        World(0, 4).check_batch_size(6)


def test_launchers_are_told_apart_by_their_environment(monkeypatch):
    for key in ("MLX_HOSTFILE", "MLX_RANK", "MLX_WORLD_SIZE", "MLX_JACCL_COORDINATOR", "OMPI_COMM_WORLD_SIZE",
                "PMI_SIZE", "RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert launcher() is None and launch_rank() == 0
    monkeypatch.setenv("RANK", "3")  # RANK alone (a scheduler's variable) is not a torchrun launch
    assert launcher() is None and launch_rank() == 0
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launcher() == "torch" and launch_rank() == 3
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")  # torch started by mpirun: still torch
    assert launcher() == "torch"
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    with pytest.raises(ConfigError, match="the mlx backend runs across processes through mlx.launch"):
        check_launcher("mlx")
    check_launcher("torch")
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("MLX_RANK", "1")
    monkeypatch.setenv("MLX_HOSTFILE", "/tmp/hosts.json")
    assert launcher() == "mlx" and launch_rank() == 1
    with pytest.raises(ConfigError, match="torch backend runs across processes through torchrun"):
        check_launcher("torch")


class TwoRanks:
    """A world whose other rank reports ``other`` to every collective."""

    def __init__(self, other: bool):
        self.other = other

    def any(self, flag: bool) -> bool:
        return flag or self.other


def test_a_stop_request_on_any_rank_stops_every_rank():
    stop = Interrupt()
    assert not stop.agreed(TwoRanks(False))
    assert stop.agreed(TwoRanks(True)) and stop.requested  # remembered: this rank saves and reports it too


def test_a_ctrl_c_relayed_by_the_launcher_is_not_a_second_one():
    import os
    import signal
    import time

    with Interrupt(relay_s=60) as stop:  # torchrun passes the terminal's SIGINT on: the same request twice
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
        assert stop.requested
    with pytest.raises(KeyboardInterrupt):  # one process: a second Ctrl-C exits at once
        with Interrupt() as stop:
            for _ in range(2):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)
