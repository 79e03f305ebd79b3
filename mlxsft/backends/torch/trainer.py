"""The torch training loop: the MLX loop's design on transformers + peft (no HF Trainer).

    trainer = TorchTrainer(cfg, model, tokenizer, run_dir, device_plan, callback)
    result = trainer.fit(train_split, valid_split, resume=False)

Same contract as ``mlxsft/backends/mlx/trainer.py``: the same data order (``plan_batches``), the same
loss (mean NLL over every supervised token of an optimizer step; each micro-batch's gradient is that of
``sum_nll / N`` with N the step's supervised tokens, so accumulation is exact), the same clipping,
schedules, evaluation, best/ folder, atomic checkpoints with data cursor and RNG, metrics.jsonl fields
and callback events (``start``, ``step``, ``eval``, ``checkpoint``, ``message``, ``end``). The trainer
never prints.
"""

from __future__ import annotations

import math

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from mlxsft.backends.loop import (Interrupt, MicroBatches, NonFiniteGuard, TrainResult, TrainState, pad_id,
                                  validation_plan)
from mlxsft.backends.torch import checkpoint as ckpt
from mlxsft.backends.torch.adapters import trainable_state
from mlxsft.backends.torch.device import DevicePlan, autocast, peak_memory_gb, reset_peak_memory
from mlxsft.backends.torch.distributed import TorchWorld
from mlxsft.backends.torch.loss import token_nll
from mlxsft.backends.torch.optim import build_optimizer
from mlxsft.backends.torch.validation import batch_tensors, split_nll
from mlxsft.config import Config
from mlxsft.data.batching import Batch
from mlxsft.distributed import NoMetrics
from mlxsft.errors import RunError
from mlxsft.runs import MetricsLog

Callback = Callable[[str, dict], None]


class TorchTrainer:
    def __init__(self, cfg: Config, model: Any, tokenizer: Any, run_dir: Path, plan: DevicePlan,
                 callback: Optional[Callback] = None, *, world: Optional[TorchWorld] = None):
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        self.world = world or TorchWorld()  # torchrun: this process's share of each step (mlxsft/distributed.py)
        self.train_model = model  # what forward/backward run through: the model, or its DDP wrapper
        self.run_dir = Path(run_dir)
        self.plan = plan
        self.callback = callback or (lambda event, payload: None)
        self.pad_id = pad_id(tokenizer)

    # ----------------------------------------------------------------- step
    def _tensors(self, batch: Batch) -> tuple[Any, Any, Any]:
        return batch_tensors(batch, self.plan.device, self.cfg.data.pack)

    def _micro_step(self, batch: Batch, inv_n: float) -> float:
        """Forward + backward of one micro-batch; gradients accumulate in ``.grad``. Returns its NLL sum."""
        ids, mask, seg = self._tensors(batch)
        with autocast(self.plan):
            nll_sum, _ = token_nll(self.train_model, ids, mask, seg)
        (nll_sum * inv_n).backward()
        return float(nll_sum.detach())

    def _optimizer_step(self, optimizer: Any, scheduler: Any, params: list,
                        allow: Callable[[float], bool] = lambda norm: True) -> tuple[float, bool]:
        """Clip and apply the gradients unless ``allow(grad_norm)`` says no (a NaN/inf step): (norm, applied).

        A skipped step advances neither the optimizer nor the schedule, as in the MLX loop."""
        import torch

        max_norm = self.cfg.optim.max_grad_norm
        grads = [p.grad for p in params if p.grad is not None]
        if max_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
        norm = float(norm)
        applied = allow(norm)
        if applied:
            optimizer.step()
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return norm, applied

    # ----------------------------------------------------------------- eval
    def evaluate(self, split: Any) -> tuple[float, int]:
        """(mean NLL per supervised token, supervised tokens) over a split, same masks as training."""
        plan = validation_plan(split.examples, self.cfg)
        total, count = split_nll(self.model, split.examples, plan, pad_id=self.pad_id, pack=self.cfg.data.pack,
                                 autocast=lambda: autocast(self.plan))
        return (total / count if count else float("nan")), count

    # ----------------------------------------------------------------- checkpoints
    def _save(self, st: TrainState, optimizer: Any, scheduler: Any) -> Optional[Path]:
        weights = self.world.full_state(trainable_state(self.model))  # FSDP: every rank gathers, rank 0 keeps
        optimizer_state = self.world.optimizer_state(optimizer)
        if not self.world.is_main:  # rank 0 alone writes the run folder
            return None
        path = ckpt.save_checkpoint(self.run_dir, st.step, weights, optimizer_state, scheduler, asdict(st))
        ckpt.write_model_files(self.run_dir, self.model, weights)
        self.callback("checkpoint", {"step": st.step, "path": str(path)})
        return path

    def _resume(self, optimizer: Any, scheduler: Any) -> TrainState:
        import torch

        path = ckpt.latest_checkpoint(self.run_dir)
        weights, opt, state = ckpt.load_checkpoint(path)
        params = trainable_state(self.model)
        if set(weights) != set(params):
            raise RunError(f"{path}: checkpoint weights do not match this model/method")
        if state.get("config_hash") and state["config_hash"] != self.cfg.hash():
            raise RunError(f"{path}: the config differs from the run being resumed",
                           hint="resume with the run's own config.yaml")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(self.world.local(weights[name], p))
        self.world.load_optimizer_state(optimizer, opt["optimizer"])
        scheduler.load_state_dict(opt["scheduler"])
        ckpt.restore_rng(opt["rng"])
        known = set(TrainState.__dataclass_fields__)
        return TrainState(**{k: v for k, v in state.items() if k in known})

    # ----------------------------------------------------------------- loop
    def fit(self, train: Any, valid: Any = None, resume: bool = False) -> TrainResult:
        import torch

        cfg, t = self.cfg, self.cfg.train
        batches = MicroBatches(train.examples, cfg, self.pad_id)
        n_micro, total = batches.per_epoch, batches.total_steps()
        self.train_model = self.world.wrap(self.model)  # DDP, or FSDP shards: before the optimizer sees parameters
        params = list(trainable_state(self.model).values())
        optimizer, scheduler = build_optimizer(cfg.optim, params, total)
        torch.manual_seed(t.seed)  # dropout stream; a resume restores the saved one
        st = self._resume(optimizer, scheduler) if resume else TrainState(config_hash=cfg.hash())
        metrics = (MetricsLog(self.run_dir / "metrics.jsonl", truncate_after_step=st.step if resume else None)
                   if self.world.is_main else NoMetrics())
        if t.grad_checkpoint:
            # non-reentrant checkpointing needs no input grads, so frozen embeddings (LoRA) are fine
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model.train()
        reset_peak_memory(self.plan)
        self.callback("start", {"total_steps": total, "step": st.step, "micro_batches_per_epoch": n_micro,
                                "rows": len(train.examples), "resumed": resume})

        interrupted = stopped_early = False
        saved_step = st.step if resume else -1  # the step the newest checkpoint holds
        window_tokens, window_start = 0, time.perf_counter()
        losses: list[float] = []
        started = time.perf_counter() - st.elapsed_s
        guard = NonFiniteGuard(t.skip_nonfinite, self.run_dir, self.callback)
        with Interrupt(self.world.signal_relay_s) as stop:
            while st.step < total and not stop.agreed(self.world):
                micro = batches.step(st, self.world.size)
                n_sup = sum(int(b.loss_mask[:, 1:].sum()) for b in micro)
                if n_sup == 0:  # every row in these batches lost its targets; skip without an update
                    continue
                nll_total = 0.0
                for i, b in enumerate(micro):
                    with self.world.no_sync(i < len(micro) - 1):  # DDP: one all-reduce per step; n_sup: global
                        nll_total += self._micro_step(self.world.shard(b), self.world.grad_scale / n_sup)
                    tokens = int((b.segment_ids > 0).sum())
                    st.trained_tokens += tokens
                    window_tokens += tokens
                nll_total = self.world.sum(nll_total)  # all ranks: the global step's loss
                loss = nll_total / n_sup
                lr = float(optimizer.param_groups[0]["lr"])
                grad_norm, applied = self._optimizer_step(optimizer, scheduler, params,
                                                          lambda norm: guard.allows(st, loss, norm))
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
                              "trained_tokens": st.trained_tokens, "peak_memory_gb": peak_memory_gb(self.plan),
                              "elapsed_s": st.elapsed_s, "total_steps": total}
                    losses = []
                    metrics.write(record)
                    self.callback("step", record)

                last = st.step == total
                if valid is not None and valid.examples and ((t.eval_every and st.step % t.eval_every == 0) or last):
                    stopped_early = self.world.any(self.world.evaluates  # rank 0 (FSDP: all) evaluates
                                                   and self._eval_and_track(st, valid, metrics, n_micro, total))
                if (t.save_every and st.step % t.save_every == 0) or last or stopped_early:
                    self._save(st, optimizer, scheduler)
                    saved_step = st.step
                if stopped_early:
                    break
            if stop.requested and st.step < total:
                interrupted = True
                if saved_step != st.step:  # a stop that lands on a save step is saved once, not twice
                    self._save(st, optimizer, scheduler)
                self.callback("message", {"text": f"interrupted at step {st.step}; checkpoint saved"})

        self.model.eval()
        result = TrainResult(run_dir=str(self.run_dir), steps=st.step, total_steps=total,
                             train_loss=st.last_train_loss, val_loss=st.last_val_loss, best_val_loss=st.best_val,
                             best_step=st.best_step, interrupted=interrupted, stopped_early=stopped_early,
                             peak_memory_gb=peak_memory_gb(self.plan),
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
            best = self.world.full_state(trainable_state(self.model))
            if self.world.is_main:
                ckpt.write_model_files(self.run_dir / "best", self.model, best)
        else:
            st.bad_evals += 1
        record = {"step": st.step, "epoch": round(st.epoch + st.cursor / max(n_micro, 1), 4),
                  "val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50.0)), "val_tokens": n_tokens,
                  "best_val_loss": st.best_val, "elapsed_s": st.elapsed_s, "total_steps": total,
                  "peak_memory_gb": peak_memory_gb(self.plan), "trained_tokens": st.trained_tokens}
        metrics.write(record)
        self.callback("eval", record)
        return bool(t.early_stop) and st.bad_evals >= t.early_stop
