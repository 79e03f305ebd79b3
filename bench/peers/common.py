"""What every bench contender shares: the job, its timing and memory readings, and the validation loss.

Each contender runs in its own process (``python -m bench.peers.<name> JOB.json RESULT.json``) so its peak
memory is its own. A runner builds its trainer from ``Job``, calls ``Clock.trained()`` the moment its adapters
are on disk (the end of the timed job), then ``finish(...)``, which reads peak memory *before* the validation
pass and computes the validation loss the same way for everyone (``val_loss_mlx`` / ``val_loss_torch``):
mean NLL per supervised token over the whole validation file, with mlxsft's masks for ``train_on="last"``
(the last assistant turn and its end-of-turn token), through mlxsft's own ``split_nll`` (the code of
``mlxsft eval --data``) on MLX or torch. The peers' own loss numbers use other reductions (mlx-lm: a mean
of per-batch means), so theirs are not used.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class Job:
    """The one SFT job every contender runs."""

    model: str  # an unquantised HF-format safetensors folder (mlxsft's MLX conversion): the same weights for all
    train_dir: str  # folder holding train.jsonl (chat rows, "messages")
    valid_dir: str  # folder holding valid.jsonl (used only by the bench's own validation pass)
    out: str  # this contender's run folder
    rank: int = 8
    alpha: float = 16.0  # LoRA update scale = alpha / rank
    learning_rate: float = 1e-3
    warmup_steps: int = 0  # cosine decay from the peak to 0 over the run (each peer warms up its own way)
    batch_size: int = 8
    epochs: int = 1
    max_seq_len: int = 768
    seed: int = 0
    method: str = "lora"  # every linear layer of every transformer block
    started_at: float = 0.0  # time.time() when the parent spawned this process
    options: dict = field(default_factory=dict)  # contender-specific switches (lever measurements)

    @classmethod
    def load(cls, path: str | Path) -> "Job":
        return cls(**json.loads(Path(path).read_text()))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))


def peer_passes(job: Job) -> tuple[dict, int, int]:
    """(the other options, rows per pass, passes accumulated per update) for a peer: its whole batch in one pass,
    or ``--option PEER:micro_batch_size=N`` rows per pass with its own gradient accumulation making up the batch."""
    options = dict(job.options)
    rows = int(options.pop("micro_batch_size", job.batch_size))
    return options, rows, max(1, job.batch_size // rows)


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall time from the parent's spawn to ``trained()``; training time from ``start()`` to ``trained()``.

    CPU seconds are kept too: on a shared machine other processes stretch wall time, far less CPU time.
    """

    def __init__(self, job: Job):
        self.job = job
        self.t_start: Optional[float] = None
        self.t_trained: Optional[float] = None
        self.cpu_start = self.cpu_trained = 0.0

    def start(self) -> None:
        self.t_start, self.cpu_start = time.time(), cpu_seconds()

    def trained(self) -> None:
        self.t_trained, self.cpu_trained = time.time(), cpu_seconds()

    def wall_s(self) -> float:
        return (self.t_trained or time.time()) - self.job.started_at

    def train_s(self) -> float:
        return (self.t_trained or time.time()) - (self.t_start or self.job.started_at)


def peak_rss_gb() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * (1 if sys.platform.startswith("linux") else 1 / 1024) * 1024 / 1e9


def matmul_peak_mlx(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 ``n x n`` matmul rate in this process, FLOP/s (MLX)."""
    import mlx.core as mx

    a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
    mx.eval(a, b)
    mx.eval(a @ b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        mx.eval(a @ b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def matmul_peak_torch(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 ``n x n`` matmul rate in this process, FLOP/s (torch, CPU)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def validation_rows(job: Job) -> tuple[list, list, int]:
    """(examples, length-sorted batch plan, pad id) of the validation file, tokenized and masked by mlxsft
    (``train_on: last``) with the model folder's own tokenizer: the same ids and masks for every contender."""
    from mlxsft.backends.loop import pad_id
    from mlxsft.config import DataConfig
    from mlxsft.data import prepare_split
    from mlxsft.data.batching import plan_batches
    from mlxsft.models import load_tokenizer

    tokenizer = load_tokenizer(job.model)
    cfg = DataConfig(data=job.valid_dir, train_on="last", max_seq_len=job.max_seq_len)
    examples = prepare_split(cfg, tokenizer, "valid").examples
    plan = plan_batches([len(e.input_ids) for e in examples], job.batch_size, max_seq_len=job.max_seq_len,
                        pack=False, seed=0, epoch=0, shuffle=False)
    return examples, plan, pad_id(tokenizer)


def val_loss_mlx(model: Any, job: Job) -> tuple[float, int]:
    """(mean NLL per supervised token, supervised tokens) of an mlx-lm model: ``mlxsft eval --data``'s code."""
    from mlxsft.backends.mlx.validation import split_nll

    model.eval()
    examples, plan, pad = validation_rows(job)
    total, count = split_nll(model, examples, plan, pad_id=pad, pack=False)
    return total / count, count


def val_loss_torch(model: Any, job: Job) -> tuple[float, int]:
    """(mean NLL per supervised token, supervised tokens) of a transformers/peft model, likewise."""
    from mlxsft.backends.torch.validation import split_nll

    examples, plan, pad = validation_rows(job)
    total, count = split_nll(model, examples, plan, pad_id=pad, pack=False)
    return total / count, count


def finish(result_path: str | Path, clock: Clock, *, name: str, engine: str, peak_flops: Any,
           evaluate: Any, mlx_peak_gb: Optional[float] = None, steps: Optional[int] = None,
           extra: Optional[dict] = None) -> None:
    """Record times and peak memory, run the validation pass, time a matmul, write the result JSON.

    ``evaluate()`` returns (val_loss, val_tokens); ``peak_flops()`` is ``matmul_peak_mlx`` or ``matmul_peak_torch``.
    """
    rss = peak_rss_gb()  # before validation, which is not part of the job
    t_eval = time.perf_counter()
    val_loss, val_tokens = evaluate()
    eval_s = time.perf_counter() - t_eval
    flops = peak_flops()  # after the job, so its timing is not in the job's wall time
    record = {"name": name, "engine": engine, "wall_s": clock.wall_s(), "train_s": clock.train_s(),
              "cpu_s": clock.cpu_trained, "train_cpu_s": clock.cpu_trained - clock.cpu_start,
              "peak_rss_gb": rss, "mlx_peak_gb": mlx_peak_gb, "val_loss": val_loss, "val_tokens": val_tokens,
              "steps": steps, "matmul_peak_flops": flops, "eval_s": eval_s,
              "blas_preload": os.environ.get("LD_PRELOAD", ""), "extra": extra or {}}
    tmp = Path(str(result_path) + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(result_path)
