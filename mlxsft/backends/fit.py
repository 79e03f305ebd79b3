"""The training loop, written once: both backends' trainers are engines that this loop drives.

    trainer = MLXTrainer(cfg, model, tokenizer, run_dir, adapter_cfg, callback)   # an Engine
    result = trainer.fit(train_split, valid_split, resume=False)                  # -> fit(trainer, ...)

The loop owns the cadence: data order, skipping steps with no supervised token, the report window and
``metrics.jsonl``, validation, ``best/``, early stopping, checkpoints (each step saved at most once),
the first Ctrl-C (checkpoint and stop) and the result. An engine owns only what differs between
frameworks: building the optimizer and resuming it (``begin``), the forward/backward passes of one
step (``accumulate``), the update (``apply``), the learning rate, validation, writing checkpoints and
``best/``, and peak memory. A new per-step metric is a change to ``fit`` alone (``--report-to``'s trackers
get every ``metrics.jsonl`` record, ``mlxsft/trackers/``).

Loss: the mean NLL over every supervised token of an optimizer step. Each micro-batch contributes
``sum_nll / N`` with N the step's supervised tokens (known up front from the masks), so accumulation
is exact. The loop never prints; it reports through ``callback(event, payload)``: ``start``, ``step``,
``eval``, ``checkpoint`` (from the engine), ``message`` and ``end``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from mlxsft.backends.loop import Interrupt, MicroBatches, NonFiniteGuard, TrainResult, TrainState
from mlxsft.config import Config
from mlxsft.data.batching import Batch
from mlxsft.distributed import NoMetrics, World
from mlxsft.events import Event
from mlxsft.runs import MetricsLog
from mlxsft.trackers import open_trackers

Callback = Callable[[Event, dict], None]


class Engine:
    """What a backend's trainer provides to ``fit``; every method is called on every rank."""

    cfg: Config
    run_dir: Path
    world: World
    pad_id: int
    callback: Callback

    def begin(self, total_steps: int, resume: bool) -> TrainState:
        """Build the optimizer and schedule for ``total_steps``, seed, and return a fresh or resumed state."""
        raise NotImplementedError

    def accumulate(self, micro: list[Batch], n_sup: int, st: TrainState) -> float:
        """Forward and backward over one step's micro-batches, gradients of ``sum_nll / n_sup`` kept for
        ``apply``; returns the step's NLL summed over all ranks."""
        raise NotImplementedError

    def learning_rate(self) -> float:
        """The learning rate the coming update uses."""
        raise NotImplementedError

    def apply(self, allow: Callable[[float], bool]) -> tuple[float, bool]:
        """Clip and apply the kept gradients unless ``allow(grad_norm)`` says no: (grad_norm, applied)."""
        raise NotImplementedError

    def evaluate(self, split: Any) -> tuple[float, int]:
        """(mean NLL per supervised token, supervised tokens) over a split, same masks as training."""
        raise NotImplementedError

    def save(self, st: TrainState) -> Optional[Path]:
        """Write a checkpoint of step ``st.step`` (rank 0 writes; all ranks call it)."""
        raise NotImplementedError

    def save_best(self) -> None:
        """Write the current trainable weights to ``best/``."""
        raise NotImplementedError

    def peak_memory_gb(self) -> float:
        raise NotImplementedError

    def finish(self) -> None:
        """After the loop (e.g. back to eval mode)."""

    def fit(self, train: Any, valid: Any = None, resume: bool = False) -> TrainResult:
        return fit(self, train, valid, resume)


def fit(engine: Engine, train: Any, valid: Any = None, resume: bool = False) -> TrainResult:
    cfg, t, world, callback = engine.cfg, engine.cfg.train, engine.world, engine.callback
    batches = MicroBatches(train.examples, cfg, engine.pad_id)
    n_micro, total = batches.per_epoch, batches.total_steps()
    st = engine.begin(total, resume)
    # --report-to: rank 0's trackers get each metrics.jsonl record, and are closed as the loop ends, however it ends
    with open_trackers(cfg, engine.run_dir, world, resume=resume, start_step=st.step, emit=callback) as trackers, \
            Interrupt(world.signal_relay_s) as stop:
        metrics = (MetricsLog(engine.run_dir / "metrics.jsonl", truncate_after_step=st.step if resume else None,
                              also=trackers) if world.is_main else NoMetrics())
        callback("start", {"total_steps": total, "step": st.step, "micro_batches_per_epoch": n_micro,
                           "rows": len(train.examples), "resumed": resume})

        interrupted = stopped_early = False
        saved_step = st.step if resume else -1  # the step the newest checkpoint holds
        window_tokens, window_start = 0, time.perf_counter()
        losses: list[float] = []
        started = time.perf_counter() - st.elapsed_s
        guard = NonFiniteGuard(t.skip_nonfinite, engine.run_dir, callback)
        while st.step < total and not stop.agreed(world):
            micro = batches.step(st, world.size)
            n_sup = sum(int(b.loss_mask[:, 1:].sum()) for b in micro)
            if n_sup == 0:  # every row in these batches lost its targets; skip without an update
                continue
            loss = engine.accumulate(micro, n_sup, st) / n_sup
            tokens = sum(int((b.segment_ids > 0).sum()) for b in micro)
            st.trained_tokens += tokens
            window_tokens += tokens
            lr = engine.learning_rate()
            grad_norm, applied = engine.apply(lambda norm: guard.allows(st, loss, norm))
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
                          "trained_tokens": st.trained_tokens, "peak_memory_gb": engine.peak_memory_gb(),
                          "elapsed_s": st.elapsed_s, "total_steps": total}
                losses = []
                metrics.write(record)
                callback("step", record)

            last = st.step == total
            if valid is not None and valid.examples and ((t.eval_every and st.step % t.eval_every == 0) or last):
                stopped_early = world.any(world.evaluates  # rank 0 (FSDP: all) evaluates, every rank stops
                                          and _eval_and_track(engine, st, valid, metrics, n_micro, total))
            if (t.save_every and st.step % t.save_every == 0) or last or stopped_early:
                engine.save(st)
                saved_step = st.step
            if stopped_early:
                break
        if stop.requested and st.step < total:
            interrupted = True
            if saved_step != st.step:  # a stop that lands on a save step is saved once, not twice
                engine.save(st)
            callback("message", {"text": f"interrupted at step {st.step}; checkpoint saved"})

    engine.finish()
    result = TrainResult(run_dir=str(engine.run_dir), steps=st.step, total_steps=total,
                         train_loss=st.last_train_loss, val_loss=st.last_val_loss, best_val_loss=st.best_val,
                         best_step=st.best_step, interrupted=interrupted, stopped_early=stopped_early,
                         peak_memory_gb=engine.peak_memory_gb(),
                         tokens_per_sec=st.trained_tokens / max(st.elapsed_s, 1e-9),
                         trained_tokens=st.trained_tokens, elapsed_s=st.elapsed_s)
    callback("end", asdict(result))
    return result


def _eval_and_track(engine: Engine, st: TrainState, valid: Any, metrics: Any, n_micro: int, total: int) -> bool:
    """Validate, keep ``best/``, log; True when early stopping says stop."""
    t = engine.cfg.train
    val_loss, n_tokens = engine.evaluate(valid)
    st.last_val_loss = val_loss
    improved = st.best_val is None or val_loss < st.best_val
    if improved:
        st.best_val, st.best_step, st.bad_evals = val_loss, st.step, 0
        engine.save_best()
    else:
        st.bad_evals += 1
    record = {"step": st.step, "epoch": round(st.epoch + st.cursor / max(n_micro, 1), 4),
              "val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50.0)), "val_tokens": n_tokens,
              "best_val_loss": st.best_val, "elapsed_s": st.elapsed_s, "total_steps": total,
              "peak_memory_gb": engine.peak_memory_gb(), "trained_tokens": st.trained_tokens}
    metrics.write(record)
    engine.callback("eval", record)
    return bool(t.early_stop) and st.bad_evals >= t.early_stop
