"""Training on several processes (Macs, GPUs) with the engines' own launchers: who am I, and my share.

    mlx.launch --hostfile hosts.json -- mlxsft train ...                        # MLX: one process per Mac
    torchrun --nproc-per-node 4 -m mlxsft train --backend torch ...             # torch: one process per GPU

Data parallel. Every process reads the whole dataset and builds the same batch plan; each takes its slice of
every global micro-batch (``World.shard``), so ``batch_size`` stays the global batch and N processes train
the weights one process would. The loss of a step is normalised by its supervised tokens, counted on the
global micro-batches, so every rank knows the normaliser without asking the others. Each rank's gradient is
that of ``(its slice's summed NLL) * grad_scale / N``: the engines *average* gradients over ranks
(``mlx.nn.average_gradients``, DDP, FSDP), and scaling by the world size turns that average into the sum
over all slices, i.e. exactly the single-process gradient.

Rank 0 alone writes the run folder (config, metrics, checkpoints, plot, before/after table); the other
ranks only read it, to resume. Anything that ends the loop early (Ctrl-C on one rank, early stopping
decided on rank 0) is agreed through ``World.any`` at the same point on every rank, so no rank is left
waiting in a collective. Checkpoints keep the single-process format, so runs move between 1 and N processes.

This module imports neither engine; ``mlxsft/backends/<engine>/distributed.py`` make their ``World``.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from mlxsft.data.batching import Batch
from mlxsft.errors import ConfigError

# Variables the launchers set in every process they start.
MLX_LAUNCH_ENV = ("MLX_HOSTFILE", "MLX_RANK", "MLX_WORLD_SIZE", "MLX_JACCL_COORDINATOR")  # mlx.launch
MPI_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")  # mpirun, as mlx.launch --backend mpi runs it
RANK_ENV = {"mlx": ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"), "torch": ("RANK",)}


def launcher() -> Optional[str]:
    """``"mlx"`` (mlx.launch, mpirun), ``"torch"`` (torchrun, accelerate launch) or None (a plain process)."""
    if any(os.environ.get(k) for k in MLX_LAUNCH_ENV):
        return "mlx"
    if int(os.environ.get("WORLD_SIZE") or 1) > 1 and os.environ.get("RANK"):
        return "torch"  # (torch under mpirun also sets RANK and WORLD_SIZE)
    if any(os.environ.get(k) for k in MPI_ENV):
        return "mlx"
    return None


def launch_rank() -> int:
    """This process's rank as the launcher set it (0 when not launched): lets the CLI stay quiet on rank > 0
    before any engine is initialised."""
    for key in RANK_ENV.get(launcher() or "", ()):
        value = os.environ.get(key)
        if value and value.isdigit():
            return int(value)
    return 0


def check_launcher(engine: str) -> None:
    """Refuse a launcher that cannot start this engine's processes (they would each train alone)."""
    found = launcher()
    if found is None or found == engine:
        return
    if engine == "mlx":
        raise ConfigError("launched by torchrun/accelerate, but the mlx backend runs across processes through "
                          "mlx.launch", hint="use --backend torch, or start the processes with mlx.launch")
    raise ConfigError("launched by mlx.launch/mpirun, but the torch backend runs across processes through "
                      "torchrun or accelerate launch", hint="use --backend mlx, or start the processes with torchrun")


class World:
    """One process among ``size``: the single-process world (size 1, every method a no-op) and the shared
    logic of the engines' worlds, which override ``_all_sum``."""

    def __init__(self, rank: int = 0, size: int = 1, sharded: bool = False):
        self.rank, self.size = rank, size
        self.sharded = sharded  # weights split across ranks (FSDP): every rank must take part in each forward

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def evaluates(self) -> bool:
        """Whether this rank runs the validation pass: rank 0 alone, unless the weights are sharded."""
        return self.is_main or self.sharded

    @property
    def signal_relay_s(self) -> float:
        """How soon a second Ctrl-C is taken as the first one relayed by the launcher (see ``Interrupt``)."""
        return 0.0

    @property
    def grad_scale(self) -> float:
        """Factor on each rank's loss that turns the engines' average of gradients into their sum."""
        return float(self.size)

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise ConfigError(f"batch_size: {batch_size} rows cannot be split evenly over {self.size} processes",
                              hint=f"use a multiple of {self.size} (batch_size is the global batch)")

    def shard(self, batch: Batch) -> Batch:
        """This rank's rows of a global micro-batch. A short batch (the end of an epoch) is topped up with
        empty rows (no tokens, no loss), so every rank runs the same shapes and the same number of passes."""
        if self.size == 1:
            return batch
        rows = batch.input_ids.shape[0]
        per = -(-rows // self.size)
        lo, hi = min(self.rank * per, rows), min((self.rank + 1) * per, rows)
        arrays = [a[lo:hi] for a in (batch.input_ids, batch.loss_mask, batch.segment_ids)]
        if hi - lo < per:
            arrays = [np.concatenate([a, np.zeros((per - (hi - lo), a.shape[1]), a.dtype)]) for a in arrays]
        ids, mask, seg = arrays
        return Batch(input_ids=ids, loss_mask=mask, segment_ids=seg, n_rows=int(seg.max(axis=1, initial=0).sum()))

    def sum(self, value: float) -> float:
        """The sum of ``value`` over all ranks."""
        return value if self.size == 1 else self._all_sum([value])[0]

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any rank (call it at the same point on every rank)."""
        return flag if self.size == 1 else self._all_sum([1.0 if flag else 0.0])[0] > 0

    def agree(self, key: str) -> bool:
        """True on every rank if every rank passed the same ``key``, else False on every rank.

        48 bits of the key's hash travel as four 12-bit numbers, exact even in float32 all-reduces; the
        spread around their mean is zero exactly when all ranks hold the same numbers.
        """
        if self.size == 1:
            return True
        import hashlib

        h = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)
        mine = [float((h >> (12 * i)) & 0xFFF) for i in range(4)]
        means = [v / self.size for v in self._all_sum(mine)]
        return self._all_sum([sum((v - m) ** 2 for v, m in zip(mine, means))])[0] == 0.0

    def _all_sum(self, values: list[float]) -> list[float]:
        raise NotImplementedError


class NoMetrics:
    """What ranks other than 0 log to: nothing (``MetricsLog``'s writing half)."""

    def write(self, record: dict[str, Any]) -> None:
        pass
