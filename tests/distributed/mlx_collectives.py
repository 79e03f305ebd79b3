"""Run by ``test_mlx_distributed.py`` under ``mlx.launch -n 2``: each rank prints what the MLX world's collectives
returned, as one ``RESULT {json}`` line.

    mlx.launch --hosts 127.0.0.1 -n 2 --backend ring -- python tests/distributed/mlx_collectives.py
"""

import json

import mlx.core as mx

from mlxsft.backends.loop import Interrupt
from mlxsft.backends.mlx.distributed import mlx_world

world = mlx_world()
grads = world.average({"w": mx.array([float(world.rank), 1.0])})
stop = Interrupt()
stop.requested = world.rank == 1  # as if only rank 1 had received Ctrl-C
result = {"rank": world.rank, "size": world.size, "sum": world.sum(world.rank + 1.0),
          "any_one": world.any(world.rank == 1), "any_none": world.any(False),
          "average": grads["w"].tolist(), "stop_agreed": stop.agreed(world)}
world.any(False)  # every rank gets here before any exits
print("RESULT " + json.dumps(result), flush=True)
