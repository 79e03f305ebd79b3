"""The small interface a training backend implements; ``mlxsft.train.run_training`` drives it.

    backend = registry.get_backend("mlx", cfg, emit)   # mlxsft/backends/registry.py
    loaded = backend.load()                      # model, tokenizers, where the weights came from
    backend.make_trainable(loaded)               # LoRA / DoRA / full, seeded
    trainer = backend.trainer(loaded, run_dir)   # .fit(train, valid, resume=...) -> TrainResult
    views = backend.compare_views(loaded)        # {"base", "tuned"} ModelViews for the before/after table

Everything around the loop (run folder, data, chat template, memory refusal, lock, plot, the
before/after table) is backend-neutral and lives once in ``mlxsft/train.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

if TYPE_CHECKING:
    from mlxsft.config import Config


Emit = Callable[[str, dict], None]


OPT_SLOTS = {"adamw": 2, "adam": 2, "sgd": 1, "adafactor": 1, "muon": 1}  # optimizer state per trainable value

# The vocabulary head runs over the supervised positions in chunks of at most this many logits (64 MB in fp32),
# so its memory is bounded by the chunk, not by supervised positions x vocabulary (Gemma 3's 262k vocabulary x
# 4k supervised positions would be 4.3 GB per copy). Both backends' losses and memory plans use it. Measured on
# 512 x 262144 x 640 (2 cores): chunks of 64 / 128 / 256 positions ran no slower than the whole logits.
HEAD_CHUNK_VALUES = 1 << 24


def head_chunk_rows(vocab_size: int) -> int:
    """Supervised positions per head chunk: a multiple of 32 (the selection's padding), at least 32."""
    if whole_head():
        return 1 << 30  # every position in one piece (slice bounds stay 32-bit for MLX)
    return max(32, (HEAD_CHUNK_VALUES // max(vocab_size, 1)) // 32 * 32)


def whole_head() -> bool:
    """``MLXSFT_WHOLE_HEAD=1``: the head's logits all at once and differentiated by the framework, as before the
    chunks (``bench/bench_head.py`` measures both ways)."""
    return os.environ.get("MLXSFT_WHOLE_HEAD") == "1"


@dataclass
class MemoryPlan:
    """A backend's peak-memory estimate (``memory_plan``), in GB, as ``mlxsft train --plan`` prints it."""

    weights_gb: float
    trainable_gb: float  # trainable weights, their gradients and optimizer state
    activations_gb: float
    logits_gb: float
    runtime_gb: float = 0.0  # the framework's own resident memory, where the peak measured is the process's RSS

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.trainable_gb + self.activations_gb + self.logits_gb + self.runtime_gb


@dataclass
class Loaded:
    """A model loaded for training, with what the run folder needs to know about it."""

    model: Any
    hf_tokenizer: Any  # the transformers tokenizer (data rendering and masks)
    tokenizer: Any  # what the backend's generation takes (mlx-lm's TokenizerWrapper, or the torch wrapper)
    source: Any  # mlxsft.models.ModelSource
    weights_path: str  # the folder/file the base weights were read from (base_model.txt, line 2)
    adapter_cfg: Any = None  # set by make_trainable


class Backend(Protocol):
    name: str
    world: Any  # mlxsft.distributed.World: this process's rank among those a launcher started (size 1 alone)

    def load(self) -> Loaded: ...

    def make_trainable(self, loaded: Loaded) -> None: ...

    def count_parameters(self, model: Any) -> tuple[int, int]: ...

    def memory_plan(self, loaded: Loaded, rows: int, length: int, supervised_fraction: float,
                    cfg: Optional[Config] = None) -> MemoryPlan:
        """The peak-memory estimate for micro-batches of ``rows`` x ``length``, under ``cfg`` when given (what
        another setting, e.g. ``--grad-checkpoint``, would plan) instead of the backend's own."""
        ...

    def memory_bytes(self) -> int: ...

    def on_gpu(self) -> bool: ...

    def before_training(self) -> None: ...

    def write_run_files(self, run_dir: Path, loaded: Loaded) -> None: ...

    def trainer(self, loaded: Loaded, run_dir: Path) -> Any: ...

    def compare_views(self, loaded: Loaded) -> dict[str, Any]:
        """``{"base", "tuned"}`` ModelViews of the trained model for the before/after table and the forgetting
        score (``generate.generate_answers_batch`` and ``divergence.drift`` take them)."""
        ...
