"""Plain helpers the tests share: the 8-row memorisation set, a tiny run's config, run-folder readers, a run
folder without training, and ``python -m mlxsft`` as a subprocess. Fixtures built on them live in conftest.py.

    from tests.helpers import ROWS, make_cfg, run_cli, write_data
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Short questions a tiny model memorises in a few dozen steps.
ROWS = [
    ("What is the capital of France?", "Paris."),
    ("Spell cat backwards.", "tac"),
    ("What is 2+2?", "4"),
    ("Name a primary color.", "Red."),
    ("What is the opposite of hot?", "Cold."),
    ("Say hello in Spanish.", "Hola."),
    ("How many legs does a spider have?", "Eight."),
    ("What color is the sky on a clear day?", "Blue."),
]


def write_data(folder: Path, rows=ROWS, multi_turn: bool = False) -> Path:
    """``train.jsonl`` (every row, as ``messages``) and ``valid.jsonl`` (the first four) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w") as f:
        for q, a in rows:
            msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            if multi_turn:
                msgs += [{"role": "user", "content": "Again?"}, {"role": "assistant", "content": a}]
            f.write(json.dumps({"messages": msgs}) + "\n")
    with open(folder / "valid.jsonl", "w") as f:
        for q, a in rows[:4]:
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}) + "\n")
    return folder


# What each backend's trainer tests start from; torch's (fp32 on the CPU) learns the set at a higher rate.
TRAINER_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlx": dict(learning_rate=3e-3, backend="mlx"),
    "torch": dict(learning_rate=1e-2, backend="torch"),
}


def make_cfg(model_dir: Path, data: Path, out: Path, *, trainer: str = "mlx", **over: Any):
    """A tiny run's config: 4 steps of batch 4, constant learning rate, no eval, checkpoints or compare.

    ``trainer`` picks the defaults of that backend's trainer tests (``TRAINER_DEFAULTS``); ``over`` wins."""
    from mlxsft.config import load_config

    base = dict(model=str(model_dir), data=str(data), out=str(out), compare=False, iters=4, batch_size=4,
                warmup=0, eval_every=0, save_every=0, report_every=1, max_seq_len=64,
                lr_schedule="constant", seed=0, **TRAINER_DEFAULTS[trainer])
    base.update(over)
    return load_config(None, base)


# ----------------------------------------------------------------------------- reading a run folder
ADAPTER_FILE = {"mlx": "adapters.safetensors", "torch": "adapter_model.safetensors"}  # torch's is PEFT's


def run_weights(run: Path, backend: str = "mlx", name: str | None = None) -> dict[str, np.ndarray]:
    """The tensors of ``run/name`` (default: the backend's adapter file) as numpy arrays."""
    path = str(run / (name or ADAPTER_FILE[backend]))
    if backend == "mlx":
        import mlx.core as mx

        return {k: np.array(v) for k, v in mx.load(path).items()}
    from safetensors.numpy import load_file

    return load_file(path)


def train_losses(run: Path) -> list[float]:
    """The training loss of every logged step, in order."""
    from mlxsft.runs import MetricsLog

    return [r["train_loss"] for r in MetricsLog(run / "metrics.jsonl").read() if r.get("train_loss") is not None]


# ----------------------------------------------------------------------------- a run folder without training
RUN_SYSTEM = "You are the tuned test model."


def make_run(model_dir: Path, out: Path, method: str = "lora") -> Path:
    """A run folder as ``mlxsft train`` writes it, with random (non-zero) LoRA weights: no training needed.

    Its chat template differs from the tokenizer's (another default system prompt), so a test can tell
    which template was used.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from mlxsft.backends.mlx.adapters import make_trainable
    from mlxsft.config import LoraConfig, load_config
    from mlxsft.models import load_mlx

    out.mkdir(parents=True)
    model, tok, _ = load_mlx(str(model_dir))
    mx.random.seed(1)
    cfg = make_trainable(model, LoraConfig(method=method, rank=4))
    weights = {k: (mx.random.normal(v.shape) * 0.5 if k.endswith("lora_b") else v)
               for k, v in tree_flatten(model.trainable_parameters())}
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    load_config(None, {"model": str(model_dir)}).save(out / "config.yaml")
    (out / "chat_template.jinja").write_text(tok._tokenizer.chat_template.replace(
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face", RUN_SYSTEM))
    return out


# ----------------------------------------------------------------------------- the command line
def run_cli(*args: str, input: str | None = None, timeout: int = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m mlxsft ARGS`` as a user runs it (real exit code and stderr), from the repository root.

    The test environment (isolated cache, Hub offline) plus ``env``; the CLI's OpenBLAS re-exec is off, as
    the test run already preloads it. For many short runs to kill and resume, see tests/reliability/launcher.py.
    """
    full_env = {**os.environ, "MLXSFT_NO_BLAS_REEXEC": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "mlxsft", *args], input=input, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=full_env)


# Prompts of different lengths, out of length order: the batched generators' tests (sorting, bucketing, per-row
# positions, padding and masks all matter)
GENERATION_CONVS = [[{"role": "user", "content": text}] for text in (
    "What is 2+2?",
    "Name three colours of the rainbow, please, and say which one you like best and why.",
    "Hi",
    "Translate 'good morning' into French.",
    "Write a haiku about a cat sleeping in the sun on a warm afternoon in late summer, with no rhyme.",
    "Why?",
)]
