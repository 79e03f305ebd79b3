"""Optimizers and learning-rate schedules from mlx.optimizers, chosen from tables (no if/elif chain)."""

from __future__ import annotations

import math
from typing import Callable

import mlx.core as mx
import mlx.optimizers as optim

from mlxsft.config import OptimConfig

Schedule = Callable[[mx.array], mx.array]


def warmup_steps(cfg: OptimConfig, total_steps: int) -> int:
    return int(cfg.warmup) if cfg.warmup >= 1 else int(round(cfg.warmup * total_steps))


def build_schedule(cfg: OptimConfig, total_steps: int) -> Schedule:
    """Linear warmup to the peak, then constant / linear / cosine decay to ``min_lr_ratio * peak``."""
    peak, floor = cfg.learning_rate, cfg.learning_rate * cfg.min_lr_ratio
    warm = warmup_steps(cfg, total_steps)
    decay = max(total_steps - warm, 1)
    after: dict[str, Schedule] = {
        "constant": lambda s: mx.array(peak, dtype=mx.float32),
        "linear": lambda s: floor + (peak - floor) * (1 - mx.minimum(s, decay) / decay),
        "cosine": lambda s: floor + (peak - floor) * 0.5 * (1 + mx.cos(math.pi * mx.minimum(s, decay) / decay)),
    }
    tail = after[cfg.lr_schedule]

    def schedule(step: mx.array) -> mx.array:
        # the optimizer's step counts updates already applied: step 0 is the first update
        s = mx.array(step, dtype=mx.float32)
        if warm == 0:
            return tail(s)
        return mx.where(s < warm, peak * (s + 1) / warm, tail(s - warm))

    return schedule


def build_optimizer(cfg: OptimConfig, total_steps: int) -> optim.Optimizer:
    lr = build_schedule(cfg, total_steps)
    wd = cfg.weight_decay
    factories: dict[str, Callable[[], optim.Optimizer]] = {
        # bias correction on, as in torch/HF, so both backends take the same steps from the same config
        "adamw": lambda: optim.AdamW(learning_rate=lr, weight_decay=wd, bias_correction=True),
        "adam": lambda: optim.Adam(learning_rate=lr, bias_correction=True),
        "sgd": lambda: optim.SGD(learning_rate=lr, momentum=cfg.momentum, weight_decay=wd),
        "adafactor": lambda: optim.Adafactor(learning_rate=lr, relative_step=False, scale_parameter=False),
        "muon": lambda: optim.Muon(learning_rate=lr, momentum=cfg.momentum, weight_decay=wd),
    }
    return factories[cfg.optimizer]()
