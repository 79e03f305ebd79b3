"""The events training reports through its callback, by name, with the payload each one carries.

    def on_event(event: Event, payload: dict) -> None: ...      # cli/ui/train.py's TrainView
    run_training(cfg, callback=on_event)

The trainer never prints: every line of training output is one of these events, rendered by the UI
(``cli/ui/train.py``), which refuses a name it does not know, so a misspelled event fails loudly
instead of vanishing. Payloads are plain dicts (they go to ``metrics.jsonl`` as they are); the
TypedDicts below say what the main ones hold.
"""

from __future__ import annotations

import typing
from typing import Literal, Optional, TypedDict

Event = Literal["message", "progress", "data", "plan", "start", "step", "eval", "checkpoint", "end",
                "compare_progress", "compare"]
EVENTS: tuple[str, ...] = typing.get_args(Event)


class MessagePayload(TypedDict):
    text: str


class StartPayload(TypedDict):
    total_steps: int
    step: int  # the step it starts from (> 0 when resumed)
    micro_batches_per_epoch: int
    rows: int
    resumed: bool


class StepPayload(TypedDict):
    """A report window: ``train_loss`` is the mean over the optimizer steps since the last report."""

    step: int
    epoch: float
    train_loss: float
    learning_rate: float
    grad_norm: float
    tokens_per_sec: float
    trained_tokens: int
    peak_memory_gb: float
    elapsed_s: float
    total_steps: int


class EvalPayload(TypedDict):
    step: int
    epoch: float
    val_loss: float
    val_ppl: float
    val_tokens: int
    best_val_loss: Optional[float]
    elapsed_s: float
    total_steps: int
    peak_memory_gb: float
    trained_tokens: int


class CheckpointPayload(TypedDict):
    step: int
    path: str


class CompareProgressPayload(TypedDict):
    done: int
    total: int
