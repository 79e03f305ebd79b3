"""What both training loops share, without importing mlx or torch: loop state, result, data order, Ctrl-C.

``TrainState`` is everything besides weights and optimizer state that a resume needs; ``TrainResult`` is
what ``fit`` returns; ``MicroBatches`` is the resumable data order; ``Interrupt`` turns the first
SIGINT/SIGTERM into a checkpoint-and-stop request.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass, field
from typing import Any, Optional

from mlxsft.config import Config
from mlxsft.data.batching import Batch, collate, plan_batches


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
    """First SIGINT/SIGTERM asks the loop to checkpoint and stop; a second one exits at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "Interrupt":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


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

    def next(self, st: TrainState) -> Batch:
        plan = self.plan(st.epoch)
        if st.cursor >= len(plan):
            st.epoch, st.cursor = st.epoch + 1, 0
            plan = self.plan(st.epoch)
        entry = plan[st.cursor]
        st.cursor += 1
        return collate(self.examples, entry, self.pad_id)

    def total_steps(self) -> int:
        t = self.cfg.train
        if t.iters is not None:
            return t.iters
        epochs = t.epochs if t.epochs is not None else 1.0
        return max(1, math.ceil(epochs * self.per_epoch / t.grad_accum))


def pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id"):
        v = getattr(tokenizer, attr, None)
        if isinstance(v, int):
            return v
    return 0
