"""What both training loops share, without importing mlx or torch: loop state, result, data order, Ctrl-C.

``TrainState`` is everything besides weights and optimizer state that a resume needs; ``TrainResult`` is
what ``fit`` returns; ``MicroBatches`` is the resumable data order; ``Interrupt`` turns the first
SIGINT/SIGTERM into a checkpoint-and-stop request; ``NonFiniteGuard`` keeps a NaN/inf step out of the
weights and stops the run, or skips a few such steps with ``--skip-nonfinite N``.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from mlxsft.config import Config
from mlxsft.data.batching import Batch, collate, plan_batches, split_batch
from mlxsft.errors import RunError


@dataclass
class TrainState:
    """Everything besides weights and optimizer state that a resume needs."""

    step: int = 0
    epoch: int = 0
    cursor: int = 0  # micro-batches already consumed in `epoch`
    trained_tokens: int = 0  # non-padding input tokens processed
    best_val: Optional[float] = None
    best_step: Optional[int] = None
    bad_evals: int = 0
    elapsed_s: float = 0.0
    config_hash: str = ""
    last_train_loss: Optional[float] = None
    last_val_loss: Optional[float] = None
    nonfinite_steps: int = 0  # optimizer steps skipped for a NaN/inf loss or gradient norm


@dataclass
class TrainResult:
    run_dir: str
    steps: int
    total_steps: int
    train_loss: Optional[float]
    val_loss: Optional[float]
    best_val_loss: Optional[float]
    best_step: Optional[int]
    interrupted: bool = False
    stopped_early: bool = False
    peak_memory_gb: float = 0.0
    tokens_per_sec: float = 0.0
    trained_tokens: int = 0
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)


class Interrupt:
    """First SIGINT/SIGTERM asks the loop to checkpoint and stop; a second one exits at once.

    ``relay_s``: a second signal this soon after the first is the same request delivered twice, not a second
    Ctrl-C (torchrun passes the terminal's Ctrl-C on to processes that already received it).
    """

    def __init__(self, relay_s: float = 0.0) -> None:
        self.requested = False
        self.relay_s = relay_s
        self._since = 0.0  # time.monotonic() of the first request
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "Interrupt":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self.requested and now - self._since >= self.relay_s:
            raise KeyboardInterrupt
        if not self.requested:
            self.requested, self._since = True, now

    def agreed(self, world: Any) -> bool:
        """Whether any process of the run was asked to stop (``mlxsft.distributed.World``; every rank calls
        this at the same point of the loop, so they all stop after the same step)."""
        if world.any(self.requested) and not self.requested:
            self.requested, self._since = True, time.monotonic()
        return self.requested

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class NonFiniteGuard:
    """Decides, before each optimizer update, whether its loss and gradient norm are finite.

        guard = NonFiniteGuard(cfg.train.skip_nonfinite, run_dir, callback)
        if guard.allows(st, loss, grad_norm):   # False: skip this update (weights stay as they were)
            optimizer.update(...)

    A bad step never reaches the weights, so the last checkpoint (and every later one) stays finite. Up to
    ``allowed`` bad steps are skipped, each reported as a ``message`` event; one more raises a ``RunError``
    naming the step and the likely causes. The count lives in ``TrainState``, so it survives a resume.
    """

    def __init__(self, allowed: int, run_dir: Path, callback: Callable[[str, dict], None]):
        self.allowed, self.run_dir, self.callback = allowed, Path(run_dir), callback

    def allows(self, st: TrainState, loss: float, grad_norm: float) -> bool:
        if math.isfinite(loss) and math.isfinite(grad_norm):
            return True
        step = st.step + 1
        what = f"loss is {loss}" if not math.isfinite(loss) else f"gradient norm is {grad_norm} (loss {loss:.4f})"
        st.nonfinite_steps += 1
        if st.nonfinite_steps > self.allowed:
            raise RunError(f"step {step}: {what}, not finite; stopped after {st.nonfinite_steps} such step"
                           f"{'s' * (st.nonfinite_steps > 1)} (--skip-nonfinite {self.allowed})",
                           hint=f"likely causes: a learning rate too high (lower --learning-rate), float16 "
                                f"overflow (use --dtype bfloat16 or float32), or a bad data row; "
                                f"{self._checkpoint_note()}")
        self.callback("message", {"text": f"step {step}: {what}, not finite: update skipped "
                                          f"({st.nonfinite_steps} of {self.allowed} allowed by --skip-nonfinite)"})
        return False

    def _checkpoint_note(self) -> str:
        latest = self.run_dir / "checkpoints" / "latest"
        if not latest.is_file():
            return "no checkpoint was written before this step"
        return (f"the last checkpoint ({latest.parent / latest.read_text().strip()}) is intact: "
                f"`mlxsft train --resume {self.run_dir} --skip-nonfinite N` continues past such steps")


class MicroBatches:
    """The training data order: one plan per epoch, derived from (seed, epoch), and a cursor in TrainState.

    Nothing but ``st.epoch`` and ``st.cursor`` needs saving: a resumed run rebuilds the same plans.
    """

    def __init__(self, examples: list, cfg: Config, pad_id: int):
        self.examples, self.cfg, self.pad_id = examples, cfg, pad_id
        self.lengths = [len(e.input_ids) for e in examples]
        self._plans: dict[int, list] = {}

    def plan(self, epoch: int) -> list:
        if epoch not in self._plans:
            d, t = self.cfg.data, self.cfg.train
            self._plans = {epoch: plan_batches(self.lengths, t.batch_size, max_seq_len=d.max_seq_len,
                                               pack=d.pack, seed=t.seed, epoch=epoch)}
        return self._plans[epoch]

    @property
    def per_epoch(self) -> int:
        return len(self.plan(0))

    def step(self, st: TrainState, world_size: int = 1) -> list[Batch]:
        """The micro-batches of one optimizer step: ``grad_accum`` planned batches, each cut by
        ``split_batch`` to ``micro_batch_tokens`` per process (the cut is made on the global batch, so every
        rank of a distributed run runs the same number of passes)."""
        budget = (self.cfg.train.micro_batch_tokens or 0) * world_size
        out = []
        for _ in range(self.cfg.train.grad_accum):
            entry = self._advance(st)
            out += [collate(self.examples, part, self.pad_id) for part in split_batch(self.examples, entry, budget)]
        return out

    def _advance(self, st: TrainState) -> list:
        plan = self.plan(st.epoch)
        if st.cursor >= len(plan):
            st.epoch, st.cursor = st.epoch + 1, 0
            plan = self.plan(st.epoch)
        entry = plan[st.cursor]
        st.cursor += 1
        return entry

    def total_steps(self) -> int:
        t = self.cfg.train
        if t.iters is not None:
            return t.iters
        epochs = t.epochs if t.epochs is not None else 1.0
        return max(1, math.ceil(epochs * self.per_epoch / t.grad_accum))


def validation_plan(examples: list, cfg: Config) -> list:
    """The batches a trainer validates on: the split in a fixed, length-sorted order (``eval_batches`` of them
    when set), each cut into micro-batches like the training batches."""
    t, d = cfg.train, cfg.data
    plan = plan_batches([len(e.input_ids) for e in examples], t.batch_size, max_seq_len=d.max_seq_len,
                        pack=d.pack, seed=0, epoch=0, shuffle=False)
    if t.eval_batches:
        plan = plan[: t.eval_batches]
    return [part for entry in plan for part in split_batch(examples, entry, t.micro_batch_tokens)]


def pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id"):
        v = getattr(tokenizer, attr, None)
        if isinstance(v, int):
            return v
    return 0
