"""MLX's engine for the one training loop (``mlxsft/backends/fit.py``): the compiled step, exact gradient
accumulation over micro-batches, clipping, validation, checkpoints and resume.

    trainer = MLXTrainer(cfg, model, tokenizer, run_dir, adapter_cfg, callback)
    result = trainer.fit(train_split, valid_split, resume=False)

Each micro-batch's gradient is that of ``sum_nll / N`` with N the whole step's supervised tokens, so every
token weighs the same — not a mean of per-batch means. The trainer never prints.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map

from mlxsft.backends.fit import Engine
from mlxsft.backends.loop import TrainState, pad_id, validation_plan
from mlxsft.backends.mlx import checkpoint as ckpt
from mlxsft.backends.mlx.adapters import trainable_parameters
from mlxsft.backends.mlx.distributed import MLXWorld
from mlxsft.backends.mlx.loss import head_grad_of, split_head, supervised_selection, token_nll
from mlxsft.backends.mlx.validation import split_nll
from mlxsft.backends.mlx.optim import build_optimizer
from mlxsft.config import Config
from mlxsft.data.batching import Batch
from mlxsft.errors import RunError
from mlxsft.runs import latest_checkpoint

Callback = Callable[[str, dict], None]


def peak_memory_gb() -> float:
    try:
        return mx.get_peak_memory() / 1e9
    except Exception:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


_CHECKPOINTED: dict[type, type] = {}


def enable_grad_checkpoint(model: nn.Module) -> None:
    """Recompute each transformer block in the backward pass.

    Swaps each block's class for a per-class subclass whose ``__call__`` is wrapped in
    ``mx.checkpoint``: only this model's blocks change, never the class used elsewhere.
    """
    for layer in model.layers:
        cls = type(layer)
        if cls in _CHECKPOINTED.values():
            continue
        if cls not in _CHECKPOINTED:
            fn = cls.__call__

            def checkpointed(self, *args, _fn=fn, **kwargs):
                def inner(params, *a, **kw):
                    self.update(params)
                    return _fn(self, *a, **kw)

                return mx.checkpoint(inner)(self.trainable_parameters(), *args, **kwargs)

            _CHECKPOINTED[cls] = type(f"Checkpointed{cls.__name__}", (cls,), {"__call__": checkpointed})
        layer.__class__ = _CHECKPOINTED[cls]


class MLXTrainer(Engine):
    """The MLX engine of the one training loop (``mlxsft/backends/fit.py``)."""

    def __init__(self, cfg: Config, model: nn.Module, tokenizer: Any, run_dir: Path,
                 adapter_cfg: dict, callback: Optional[Callback] = None, *, world: Optional[MLXWorld] = None):
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        self.world = world or MLXWorld()  # mlx.launch: this process's share of each step (mlxsft/distributed.py)
        self.run_dir = Path(run_dir)
        self.adapter_cfg = adapter_cfg
        self.callback = callback or (lambda event, payload: None)
        self.pad_id = pad_id(tokenizer)

    # ----------------------------------------------------------------- step
    def _build_step(self) -> Callable:
        """A (compiled) function: micro-batch -> (summed NLL, gradients of sum_nll * inv_n)."""
        model = self.model
        selective = split_head(model) is not None  # checked eagerly, outside any trace
        head_grad = head_grad_of(model)

        def loss_fn(ids, mask, seg, idx, w, inv_n):
            select = (idx, w) if selective else None
            s, n = token_nll(model, ids, mask, seg, select, head_grad=head_grad)
            return s * inv_n, s

        value_and_grad = nn.value_and_grad(model, loss_fn)

        def micro(ids, mask, seg, idx, w, inv_n):
            (scaled, nll_sum), grads = value_and_grad(ids, mask, seg, idx, w, inv_n)
            return nll_sum, grads

        def micro_unpacked(ids, mask, idx, w, inv_n):
            return micro(ids, mask, None, idx, w, inv_n)

        if self.cfg.train.compile:
            # value_and_grad swaps parameters inside the traced function, so the model's state must be
            # an output too, or it would keep the tracer arrays after the call
            state = [model.state, mx.random.state]
            packed = mx.compile(micro, inputs=state, outputs=state)
            unpacked = mx.compile(micro_unpacked, inputs=state, outputs=state)
        else:
            packed, unpacked = micro, micro_unpacked

        def run(batch: Batch, inv_n: mx.array):
            ids, mask = mx.array(batch.input_ids), mx.array(batch.loss_mask)
            idx, w = (mx.array(a) for a in supervised_selection(batch.loss_mask))
            if self.cfg.data.pack:
                return packed(ids, mask, mx.array(batch.segment_ids), idx, w, inv_n)
            return unpacked(ids, mask, idx, w, inv_n)

        return run

    def _optimizer_step(self, optimizer: optim.Optimizer, grads: Any,
                        allow: Callable[[float], bool] = lambda norm: True) -> tuple[float, bool]:
        """Clip and apply the gradients unless ``allow(grad_norm)`` says no (a NaN/inf step): (norm, applied)."""
        max_norm = self.cfg.optim.max_grad_norm
        if max_norm > 0:
            grads, norm = optim.clip_grad_norm(grads, max_norm)
        else:
            norm = mx.sqrt(sum((g.astype(mx.float32) ** 2).sum() for _, g in tree_flatten(grads)))
        norm = float(norm)  # known before the update, so a non-finite step never reaches the weights
        if not allow(norm):
            return norm, False
        optimizer.update(self.model, grads)
        mx.eval(self.model.trainable_parameters(), optimizer.state)
        return norm, True

    # ----------------------------------------------------------------- eval
    def evaluate(self, split: Any) -> tuple[float, int]:
        """(mean NLL per supervised token, supervised tokens) over a split, same masks as training."""
        plan = validation_plan(split.examples, self.cfg)
        total, count = split_nll(self.model, split.examples, plan, pad_id=self.pad_id, pack=self.cfg.data.pack)
        return (total / count if count else float("nan")), count

    # ----------------------------------------------------------------- checkpoints
    def save(self, st: TrainState) -> Optional[Path]:
        if not self.world.is_main:  # rank 0 alone writes the run folder
            return None
        weights = trainable_parameters(self.model)
        path = ckpt.save_checkpoint(self.run_dir, st.step, weights, self.optimizer.state, asdict(st), self.adapter_cfg)
        ckpt.write_adapter_files(self.run_dir, weights, self.adapter_cfg)
        self.callback("checkpoint", {"step": st.step, "path": str(path)})
        return path

    def save_best(self) -> None:
        if self.world.is_main:
            ckpt.write_adapter_files(self.run_dir / "best", trainable_parameters(self.model), self.adapter_cfg)

    def _resume(self, optimizer: optim.Optimizer) -> TrainState:
        path = latest_checkpoint(self.run_dir)
        weights, opt_flat, state = ckpt.load_checkpoint(path)
        expected = set(trainable_parameters(self.model))
        if set(weights) != expected:
            raise RunError(f"{path}: checkpoint weights do not match this model/method")
        if state.get("config_hash") and state["config_hash"] != self.cfg.hash():
            raise RunError(f"{path}: the config differs from the run being resumed",
                           hint="resume with the run's own config.yaml")
        self.model.load_weights(list(weights.items()), strict=False)
        optimizer.init(self.model.trainable_parameters())
        optimizer.state = ckpt.optimizer_state_tree(opt_flat)
        mx.eval(self.model.parameters(), optimizer.state)
        known = set(TrainState.__dataclass_fields__)
        return TrainState(**{k: v for k, v in state.items() if k in known})

    # ----------------------------------------------------------------- the engine's part of a step (fit.py)
    def begin(self, total_steps: int, resume: bool) -> TrainState:
        t = self.cfg.train
        self.optimizer = build_optimizer(self.cfg.optim, total_steps)
        mx.random.seed(t.seed)
        st = self._resume(self.optimizer) if resume else TrainState(config_hash=self.cfg.hash())
        if not resume:
            self.optimizer.init(self.model.trainable_parameters())
        if t.grad_checkpoint:
            enable_grad_checkpoint(self.model)
        self._step_fn = self._build_step()
        mx.reset_peak_memory()
        return st

    def accumulate(self, micro: list[Batch], n_sup: int, st: TrainState) -> float:
        # RNG (dropout) is a function of (seed, step): a resumed run draws what an uninterrupted one would
        mx.random.seed(self.cfg.train.seed * 1_000_003 + st.step)
        inv_n = mx.array(self.world.grad_scale / n_sup, dtype=mx.float32)  # n_sup: all ranks' tokens
        grads, nll_total = None, 0.0
        for b in micro:
            nll_sum, g = self._step_fn(self.world.shard(b), inv_n)
            grads = g if grads is None else tree_map(mx.add, grads, g)
            mx.eval(grads, nll_sum)
            nll_total += float(nll_sum)
        self._grads = self.world.average(grads)  # all ranks: the global step
        return self.world.sum(nll_total)

    def learning_rate(self) -> float:
        return float(self.optimizer.learning_rate)

    def apply(self, allow: Callable[[float], bool]) -> tuple[float, bool]:
        grads, self._grads = self._grads, None
        return self._optimizer_step(self.optimizer, grads, allow)

    def peak_memory_gb(self) -> float:
        return peak_memory_gb()

    def finish(self) -> None:
        # the compiled step closes over self (a cycle): drop it and the optimizer state now, not at some later
        # garbage collection, so their memory is free when fit returns
        self._step_fn = self.optimizer = self._grads = None
