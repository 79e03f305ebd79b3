"""The MLX backend's ``World``: ``mx.distributed`` when started by ``mlx.launch`` (ring, MPI, JACCL), else one process.

    world = mlx_world()                  # MLXWorld(rank, size); size 1 outside a launcher
    grads = world.average(grads)         # after the micro-batches of a step: one all-reduce per 32 MiB

Gradients go through ``mlx.nn.average_gradients`` (small arrays packed into few large all-reduces); the
scalars (loss sum, stop flags) through ``mx.distributed.all_sum`` on the CPU stream, as mlx-lm does.
See ``mlxsft/distributed.py`` for the scheme.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import mlx.core as mx

from mlxsft.distributed import World, check_launcher, launcher
from mlxsft.errors import RunError


class MLXWorld(World):
    def __init__(self, group: Optional[Any] = None):
        super().__init__(rank=group.rank() if group else 0, size=group.size() if group else 1)
        self.group = group

    def average(self, grads: Any) -> Any:
        """The mean of a gradient tree over all ranks (the tree itself on one process)."""
        if self.size == 1:
            return grads
        from mlx.nn import average_gradients

        return average_gradients(grads, self.group)

    def _all_sum(self, values: list[float]) -> list[float]:
        total = mx.distributed.all_sum(mx.array(values, dtype=mx.float32), group=self.group, stream=mx.cpu)
        return [float(v) for v in total.tolist()]


def mlx_world() -> MLXWorld:
    """Join the processes ``mlx.launch`` started (a no-op world for a plain process)."""
    check_launcher("mlx")
    hostfile = os.environ.get("MLX_HOSTFILE")
    if launcher() != "mlx" or (hostfile and _empty(hostfile)):  # `mlx.launch -n 1` writes an empty hostfile
        return MLXWorld()
    try:
        group = mx.distributed.init()
    except RuntimeError as e:
        raise RunError(f"mlx.distributed: cannot connect the processes ({e})",
                       hint="check the hostfile, that every host is reachable, and that the ports are free") from None
    return MLXWorld(group if group.size() > 1 else None)


def _empty(path: str) -> bool:
    try:
        return not Path(path).read_text().strip()
    except OSError:
        return False
