"""Atomic checkpoints for MLX runs: trainable weights, optimizer state and loop state.

The RNG needs no saving: the trainer reseeds MLX's generator from (seed, step) at every step, so dropout
masks after a resume are the ones an uninterrupted run would draw.

Layout::

    checkpoints/step-00000040/{adapters.safetensors, optimizer.safetensors, state.json, adapter_config.json}
    checkpoints/latest            # text: the name of the newest complete checkpoint

A checkpoint folder is written as ``.tmp-step-…`` and renamed when complete; ``latest`` is replaced
atomically afterwards. A kill at any moment leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import json
import os

from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from mlxsft.errors import RunError
from mlxsft.files import atomic_write_json
from mlxsft.runs import write_checkpoint



def save_weights(path: Path, weights: dict[str, mx.array], metadata: dict[str, str] | None = None) -> None:
    """safetensors written atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.safetensors")
    mx.save_safetensors(str(tmp), weights, metadata=metadata or {})
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, step: int, weights: dict[str, mx.array], optimizer_state: Any,
                    state: dict[str, Any], adapter_cfg: dict[str, Any]) -> Path:
    def write(tmp: Path) -> None:
        mx.save_safetensors(str(tmp / "adapters.safetensors"), weights)
        opt_flat = {k: v for k, v in tree_flatten(optimizer_state) if isinstance(v, mx.array)}
        mx.save_safetensors(str(tmp / "optimizer.safetensors"), opt_flat)
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        (tmp / "adapter_config.json").write_text(json.dumps(adapter_cfg, indent=2))

    # the checkpoint, then the same weights again in the run folder (write_adapter_files)
    need = 2 * sum(v.nbytes for v in weights.values()) + sum(
        v.nbytes for _, v in tree_flatten(optimizer_state) if isinstance(v, mx.array))
    return write_checkpoint(run_dir, step, write, need_bytes=need)


def load_checkpoint(path: Path) -> tuple[dict[str, mx.array], dict[str, mx.array], dict[str, Any]]:
    try:
        weights = mx.load(str(path / "adapters.safetensors"))
        opt = mx.load(str(path / "optimizer.safetensors"))
        state = json.loads((path / "state.json").read_text())
    except Exception as e:  # corrupt or truncated files
        raise RunError(f"{path}: cannot read checkpoint ({e})") from None
    return weights, opt, state


def optimizer_state_tree(flat: dict[str, mx.array]) -> Any:
    return tree_unflatten(list(flat.items()))


def write_adapter_files(folder: Path, weights: dict[str, mx.array], adapter_cfg: dict[str, Any]) -> None:
    """What mlx-lm loads: adapters.safetensors + adapter_config.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / "adapters.safetensors", weights)
    atomic_write_json(folder / "adapter_config.json", adapter_cfg)
