"""The model that ``mlxsft chat`` and ``mlxsft eval`` talk to: a base model, optionally with a run's weights.

    target = resolve_target(None, "runs/sft-20261129-0712")   # the run's base model, its template, dtype
    target.model, target.adapter, target.backend, target.load_kwargs
    template = chat_template(target, hf_tokenizer)              # exactly what the run trained with

The run folder is read by ``mlxsft.runs.read.RunFolder``, the same reader export and resume use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from mlxsft.errors import RunError
from mlxsft.runs.read import RunFolder, run_backend

if TYPE_CHECKING:
    from mlxsft.config import Config, DataConfig


@dataclass
class Target:
    """A base model, optionally with a run's tuned weights."""

    model: str
    run: Optional[RunFolder] = None
    converted: Optional[Path] = None  # the run's adapters in the other backend's format (``--backend`` other)

    @property
    def adapter(self) -> Optional[Path]:
        """The folder with the tuned weights (the run, its best/, or a checkpoint), or None for the base alone."""
        if self.converted is not None:
            return self.converted
        return self.run.weights_dir if self.run else None

    @property
    def run_config(self) -> Optional["Config"]:
        return self.run.config if self.run else None

    @property
    def template(self) -> Optional[str]:
        """The run's chat_template.jinja; None: the tokenizer's (or the default)."""
        return self.run.template if self.run else None

    @property
    def fine_tune_type(self) -> str:
        return self.run.method if self.run else "lora"

    @property
    def backend(self) -> Optional[str]:
        """The backend the run trained on; None without a run."""
        return self.run.backend if self.run else None

    @property
    def template_kwargs(self) -> dict:
        return self.run.template_kwargs if self.run else {}

    @property
    def load_kwargs(self) -> dict:
        return self.run.load_kwargs if self.run else {}


def resolve_target(model: Optional[str], adapter: Optional[str | Path], backend: Optional[str] = None) -> Target:
    """``--model`` / ``--adapter`` to a Target; without ``--model`` the run's base model is used.

    ``backend``: the backend that will load it. A LoRA/DoRA run trained on the other one is converted (mlx-lm
    adapters <-> PEFT, ``mlxsft.export.adapter_format``) into a cache folder keyed by the adapter's content, so
    an MLX run chats and evaluates on torch and the reverse; a full fine-tune is refused with a hint.
    """
    from mlxsft.config import ModelConfig

    if adapter is None:
        return Target(model=model or ModelConfig().model)
    folder = Path(adapter)
    if not folder.is_dir():
        raise RunError(f"{folder}: adapter folder not found")
    trained_on = run_backend(folder)
    run = RunFolder.open(folder, model)
    target = Target(model=run.base_model, run=run)
    if backend is not None and backend != trained_on:
        if run.method == "full":
            raise RunError(f"{folder}: this full fine-tuning run was trained with --backend {trained_on}; it cannot "
                           f"be loaded with --backend {backend}",
                           hint=f"use --backend {trained_on} (or leave --backend out), or `mlxsft export --format hf`")
        target.converted = converted_adapter(run, backend)
    return target


def converted_adapter(run: RunFolder, backend: str) -> Path:
    """The run's adapters as ``backend`` loads them, converted once into ``$MLXSFT_CACHE/adapters/<key>``."""
    import hashlib

    from mlxsft.export.adapter_format import write_adapter
    from mlxsft.files import atomic_dir
    from mlxsft.models.cache import cache_root

    digest = hashlib.sha256(backend.encode())
    for f in sorted(p for p in run.weights_dir.iterdir() if p.is_file() and p.name.startswith("adapter")):
        digest.update(f.name.encode() + f.read_bytes())
    folder = cache_root() / "adapters" / f"{run.weights_dir.name}-{digest.hexdigest()[:16]}-{backend}"
    if not (folder / ".complete").is_file():
        if folder.exists():  # an entry without its marker (from a crash): write it again
            import shutil

            shutil.rmtree(folder)
        # exist_ok: a concurrent conversion that finished first wins; the two are the same bytes
        with atomic_dir(folder, exist_ok=True, marker=".complete") as tmp:
            write_adapter(run, tmp, "peft" if backend == "torch" else "mlx-adapter")
    return folder


def chat_template(target: Target, hf_tokenizer: Any) -> str:
    """The run's template, else the tokenizer's, else the default (ChatML) for template-less models."""
    if target.template is not None:
        return target.template
    from mlxsft.data import resolve_chat_template

    return resolve_chat_template(hf_tokenizer, None)


def data_config(target: Target, data: str, *, max_seq_len: Optional[int] = None) -> "DataConfig":
    """The run's data settings (format, masks, max_seq_len) pointed at another dataset."""
    import dataclasses

    from mlxsft.config import DataConfig

    base = target.run_config.data if target.run_config else DataConfig()
    cfg = dataclasses.replace(base, data=data, max_rows=None, chat_template=None)
    if max_seq_len is not None:
        cfg.max_seq_len = max_seq_len
    return cfg
