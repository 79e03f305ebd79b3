"""What both training loops share, without importing mlx or torch: loop state, result, Ctrl-C handling.

``TrainState`` is everything besides weights and optimizer state that a resume needs; ``TrainResult`` is
what ``fit`` returns; ``Interrupt`` turns the first SIGINT/SIGTERM into a checkpoint-and-stop request.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any, Optional


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
