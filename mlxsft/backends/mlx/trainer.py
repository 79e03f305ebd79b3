"""The MLX training loop: micro-batches, exact gradient accumulation, clipping, eval, checkpoints, resume.

    trainer = MLXTrainer(cfg, model, tokenizer, run_dir, adapter_cfg, callback)
    result = trainer.fit(train_split, valid_split, resume=False)

Loss: the mean NLL over every supervised token of an optimizer step. With gradient accumulation each
micro-batch contributes ``sum_nll / N`` where N is the number of supervised tokens of the whole step
(known up front from the masks), so every token weighs the same — not a mean of per-batch means.

The trainer never prints; it reports through ``callback(event, payload)`` with events
``start``, ``step``, ``eval``, ``checkpoint``, ``message`` and ``end``.
"""

from __future__ import annotations

import math

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map

from mlxsft.backends.loop import (Interrupt, MicroBatches, NonFiniteGuard, TrainResult, TrainState, pad_id,
                                  validation_plan)
from mlxsft.backends.mlx import checkpoint as ckpt
from mlxsft.backends.mlx.adapters import trainable_parameters
from mlxsft.backends.mlx.distributed import MLXWorld
from mlxsft.backends.mlx.loss import split_head, supervised_selection, token_nll
from mlxsft.backends.mlx.validation import split_nll
from mlxsft.backends.mlx.optim import build_optimizer
from mlxsft.config import Config
from mlxsft.data.batching import Batch
from mlxsft.distributed import NoMetrics
from mlxsft.errors import RunError
from mlxsft.runs import MetricsLog

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


class MLXTrainer:
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

        def loss_fn(ids, mask, seg, idx, w, inv_n):
            select = (idx, w) if selective else None
            s, n = token_nll(model, ids, mask, seg, select)
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
    def _save(self, st: TrainState, optimizer: optim.Optimizer) -> Optional[Path]:
        if not self.world.is_main:  # rank 0 alone writes the run folder
            return None
        weights = trainable_parameters(self.model)
        path = ckpt.save_checkpoint(self.run_dir, st.step, weights, optimizer.state, asdict(st), self.adapter_cfg)
        ckpt.write_adapter_files(self.run_dir, weights, self.adapter_cfg)
        self.callback("checkpoint", {"step": st.step, "path": str(path)})
        return path

    def _resume(self, optimizer: optim.Optimizer) -> TrainState:
        path = ckpt.latest_checkpoint(self.run_dir)
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

    # ----------------------------------------------------------------- loop
    def fit(self, train: Any, valid: Any = None, resume: bool = False) -> TrainResult:
        cfg, t = self.cfg, self.cfg.train
        batches = MicroBatches(train.examples, cfg, self.pad_id)
        n_micro, total = batches.per_epoch, batches.total_steps()
        optimizer = build_optimizer(cfg.optim, total)
        mx.random.seed(t.seed)
        st = self._resume(optimizer) if resume else TrainState(config_hash=cfg.hash())
        metrics = (MetricsLog(self.run_dir / "metrics.jsonl", truncate_after_step=st.step if resume else None)
                   if self.world.is_main else NoMetrics())
        if not resume:
            optimizer.init(self.model.trainable_parameters())
        if t.grad_checkpoint:
            enable_grad_checkpoint(self.model)
        step_fn = self._build_step()
        mx.reset_peak_memory()
        self.callback("start", {"total_steps": total, "step": st.step, "micro_batches_per_epoch": n_micro,
                                "rows": len(train.examples), "resumed": resume})

        interrupted = stopped_early = False
        saved_step = st.step if resume else -1  # the step the newest checkpoint holds
        window_tokens, window_start = 0, time.perf_counter()
        losses: list[float] = []
        started = time.perf_counter() - st.elapsed_s
        tok_per_sec = 0.0
        guard = NonFiniteGuard(t.skip_nonfinite, self.run_dir, self.callback)
        with Interrupt() as stop:
            while st.step < total and not stop.agreed(self.world):
                micro = batches.step(st, self.world.size)
                n_sup = sum(int(b.loss_mask[:, 1:].sum()) for b in micro)
                if n_sup == 0:  # every row in these batches lost its targets; skip without an update
                    continue
                # RNG (dropout) is a function of (seed, step): a resumed run draws what an uninterrupted one would
                mx.random.seed(t.seed * 1_000_003 + st.step)
                inv_n = mx.array(self.world.grad_scale / n_sup, dtype=mx.float32)  # n_sup: all ranks' tokens
                grads, nll_total = None, 0.0
                for b in micro:
                    nll_sum, g = step_fn(self.world.shard(b), inv_n)
                    grads = g if grads is None else tree_map(mx.add, grads, g)
                    mx.eval(grads, nll_sum)
                    nll_total += float(nll_sum)
                    tokens = int((b.segment_ids > 0).sum())
                    st.trained_tokens += tokens
                    window_tokens += tokens
                grads, nll_total = self.world.average(grads), self.world.sum(nll_total)  # all ranks: the global step
                loss = nll_total / n_sup
                lr = float(optimizer.learning_rate)
                grad_norm, applied = self._optimizer_step(optimizer, grads, lambda norm: guard.allows(st, loss, norm))
                st.step += 1
                if applied:
                    losses.append(loss)
                    st.last_train_loss = loss
                st.elapsed_s = time.perf_counter() - started

                if losses and (st.step % max(t.report_every, 1) == 0 or st.step == total or st.step == 1):
                    now = time.perf_counter()
                    tok_per_sec = window_tokens / max(now - window_start, 1e-9)
                    window_tokens, window_start = 0, now
                    record = {"step": st.step, "epoch": round(st.epoch + st.cursor / max(n_micro, 1), 4),
                              "train_loss": float(np.mean(losses)), "learning_rate": lr,
                              "grad_norm": grad_norm, "tokens_per_sec": tok_per_sec,
                              "trained_tokens": st.trained_tokens, "peak_memory_gb": peak_memory_gb(),
                              "elapsed_s": st.elapsed_s, "total_steps": total}
                    losses = []
                    metrics.write(record)
                    self.callback("step", record)

                last = st.step == total
                if valid is not None and valid.examples and ((t.eval_every and st.step % t.eval_every == 0) or last):
                    stopped_early = self.world.any(self.world.evaluates  # rank 0 evaluates, every rank stops
                                                   and self._eval_and_track(st, valid, metrics, n_micro, total))
                if (t.save_every and st.step % t.save_every == 0) or last or stopped_early:
                    self._save(st, optimizer)
                    saved_step = st.step
                if stopped_early:
                    break
            if stop.requested and st.step < total:
                interrupted = True
                if saved_step != st.step:  # a stop that lands on a save step is saved once, not twice
                    self._save(st, optimizer)
                self.callback("message", {"text": f"interrupted at step {st.step}; checkpoint saved"})

        result = TrainResult(run_dir=str(self.run_dir), steps=st.step, total_steps=total,
                             train_loss=st.last_train_loss, val_loss=st.last_val_loss, best_val_loss=st.best_val,
                             best_step=st.best_step, interrupted=interrupted, stopped_early=stopped_early,
                             peak_memory_gb=peak_memory_gb(),
                             tokens_per_sec=st.trained_tokens / max(st.elapsed_s, 1e-9),
                             trained_tokens=st.trained_tokens, elapsed_s=st.elapsed_s)
        self.callback("end", asdict(result))
        return result

    def _eval_and_track(self, st: TrainState, valid: Any, metrics: MetricsLog, n_micro: int, total: int) -> bool:
        t = self.cfg.train
        val_loss, n_tokens = self.evaluate(valid)
        st.last_val_loss = val_loss
        improved = st.best_val is None or val_loss < st.best_val
        if improved:
            st.best_val, st.best_step, st.bad_evals = val_loss, st.step, 0
            ckpt.write_adapter_files(self.run_dir / "best", trainable_parameters(self.model), self.adapter_cfg)
        else:
            st.bad_evals += 1
        record = {"step": st.step, "epoch": round(st.epoch + st.cursor / max(n_micro, 1), 4),
                  "val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50.0)), "val_tokens": n_tokens,
                  "best_val_loss": st.best_val, "elapsed_s": st.elapsed_s, "total_steps": total,
                  "peak_memory_gb": peak_memory_gb(), "trained_tokens": st.trained_tokens}
        metrics.write(record)
        self.callback("eval", record)
        return bool(t.early_stop) and st.bad_evals >= t.early_stop
