"""Optimizers and learning-rate schedules from torch.optim, chosen from tables (no if/elif chain).

    optimizer, scheduler = build_optimizer(cfg.optim, params, total_steps)

The schedule is the MLX backend's (``mlxsft/backends/mlx/optim.py``) written as a LambdaLR factor:
linear warmup to the peak over ``warmup`` updates, then constant / linear / cosine decay to
``min_lr_ratio * peak``. Update s (0-based) uses ``schedule(s)`` in both backends.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from mlxsft.config import OptimConfig


def warmup_steps(cfg: OptimConfig, total_steps: int) -> int:
    return int(cfg.warmup) if cfg.warmup >= 1 else int(round(cfg.warmup * total_steps))


def lr_factor(cfg: OptimConfig, total_steps: int) -> Callable[[int], float]:
    """s -> learning rate of update s as a fraction of the peak."""
    floor = cfg.min_lr_ratio
    warm = warmup_steps(cfg, total_steps)
    decay = max(total_steps - warm, 1)
    after: dict[str, Callable[[int], float]] = {
        "constant": lambda s: 1.0,
        "linear": lambda s: floor + (1 - floor) * (1 - min(s, decay) / decay),
        "cosine": lambda s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(s, decay) / decay)),
    }
    tail = after[cfg.lr_schedule]

    def factor(s: int) -> float:
        return (s + 1) / warm if s < warm else tail(s - warm)

    return factor


def _muon(params: list, cfg: OptimConfig) -> Any:
    import torch

    # torch's Muon takes 2-D matrices only; the rest (norms, biases, DoRA magnitudes) go to AdamW,
    # the split Muon's authors recommend.
    matrices = [p for p in params if p.ndim == 2]
    others = [p for p in params if p.ndim != 2]
    muon = torch.optim.Muon(matrices, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if not others:
        return muon
    return _Chained([muon, torch.optim.AdamW(others, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)])


class _Chained:
    """Several optimizers behind one step()/zero_grad()/state_dict(), for parameter splits (Muon)."""

    def __init__(self, optimizers: list) -> None:
        self.optimizers = optimizers
        self.param_groups = [g for o in optimizers for g in o.param_groups]

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"chained": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for o, s in zip(self.optimizers, state["chained"]):
            o.load_state_dict(s)


def build_optimizer(cfg: OptimConfig, params: list, total_steps: int) -> tuple[Any, Any]:
    """(optimizer, LambdaLR scheduler) over ``params`` for ``total_steps`` updates."""
    import torch

    lr, wd = cfg.learning_rate, cfg.weight_decay
    factories: dict[str, Callable[[], Any]] = {
        "adamw": lambda: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
        "adam": lambda: torch.optim.Adam(params, lr=lr),
        "sgd": lambda: torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=wd),
        "adafactor": lambda: torch.optim.Adafactor(params, lr=lr, weight_decay=wd),
        "muon": lambda: _muon(params, cfg),
    }
    optimizer = factories[cfg.optimizer]()
    factor = lr_factor(cfg, total_steps)
    inner = optimizer.optimizers if isinstance(optimizer, _Chained) else [optimizer]
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in inner]
    return optimizer, schedulers[0] if len(schedulers) == 1 else _ChainedScheduler(schedulers)


class _ChainedScheduler:
    def __init__(self, schedulers: list) -> None:
        self.schedulers = schedulers

    def step(self) -> None:
        for s in self.schedulers:
            s.step()

    def state_dict(self) -> dict:
        return {"chained": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state: dict) -> None:
        for s, st in zip(self.schedulers, state["chained"]):
            s.load_state_dict(st)
