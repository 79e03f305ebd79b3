"""The one reader of a finished (or stopped) run folder, for chat, eval, export and ``train --resume``.

    run = RunFolder.open("runs/sft-20261129-0712")     # or RUN/best, or RUN/checkpoints/step-…
    run.backend, run.method, run.base_model, run.weights_dir, run.config, run.template

An MLX run keeps mlx-lm's ``adapters.safetensors`` + ``adapter_config.json`` (LoRA/DoRA adapters, or the
tuned tensors of a full fine-tune); a torch run (``run_info.json`` says ``"backend": "torch"``) keeps PEFT's
``adapter_model.safetensors`` + ``adapter_config.json`` for LoRA/DoRA and ``trainable.safetensors`` for full
fine-tuning. The method is read from those files alone, the same way for every command. Every check is
cheap and runs before anything is loaded or written, so a bad path fails in milliseconds with one line
naming the folder and what is missing.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from mlxsft.config import RemoteCodeFromFile
from mlxsft.errors import MlxsftError, RunError

if TYPE_CHECKING:
    from mlxsft.config import Config

MLX_FILES = ("adapters.safetensors", "adapter_config.json")
PEFT_FILES = ("adapter_model.safetensors", "adapter_config.json")
FULL_TORCH_FILE = "trainable.safetensors"
RUN_INFO = "run_info.json"  # written by the torch backend: {"backend": "torch", "base_model": ..., "method": ...}


@dataclass
class RunFolder:
    weights_dir: Path  # the folder holding the tuned weights (RUN, RUN/best, RUN/checkpoints/step-…)
    run_dir: Path  # the run root: config.yaml, metrics.jsonl, compare.json
    backend: str  # "mlx" | "torch"
    method: str  # "lora" | "dora" | "full"
    base_model: str  # the model spec the run trained on (or --model)
    config: Optional["Config"] = None
    template: Optional[str] = None  # chat_template.jinja: exactly what the run trained with
    metrics: list[dict[str, Any]] = field(default_factory=list)
    compare: Optional[dict[str, Any]] = None

    @classmethod
    def open(cls, path: str | Path, model: Optional[str] = None, *, purpose: str = "load") -> "RunFolder":
        """The run at ``path``; ``model`` overrides the base model it names (e.g. after moving it).

        ``purpose`` ("load", "export") only words the error when the tuned weights are missing.
        """
        weights_dir = Path(path).expanduser()
        if not weights_dir.is_dir():
            raise RunError(f"{weights_dir}: run folder not found")
        root = run_root(weights_dir)
        backend = run_backend(weights_dir)
        method = _method(weights_dir, backend, purpose)
        with warnings.catch_warnings():  # chat, eval and export never use it: no need to warn that it is dropped
            warnings.simplefilter("ignore", RemoteCodeFromFile)
            config = run_config(root) if root is not None else None
        if model is None and config is None:
            raise RunError(f"{weights_dir}: not a run folder (no config.yaml naming the base model here or in the "
                           f"two folders above)", hint="pass --model")
        run_dir = root or weights_dir
        template_file = run_dir / "chat_template.jinja"
        return cls(weights_dir=weights_dir, run_dir=run_dir, backend=backend, method=method,
                   base_model=model or config.model.model, config=config,
                   template=template_file.read_text(encoding="utf-8") if template_file.is_file() else None,
                   metrics=read_metrics(run_dir), compare=read_json(run_dir / "compare.json"))

    @property
    def load_kwargs(self) -> dict[str, Any]:
        """dtype and quantization the weights were trained against (QLoRA adapters need the same base)."""
        if self.config is None:
            return {}
        m = self.config.model
        return {"dtype": m.dtype, "quantize": m.quantize, "group_size": m.group_size}

    @property
    def template_kwargs(self) -> dict[str, Any]:
        return dict(self.config.data.chat_template_kwargs) if self.config else {}

    @property
    def name(self) -> str:
        """A file-name-friendly name for the run (the run folder's name)."""
        return self.run_dir.resolve().name or "model"


def run_root(folder: Path) -> Optional[Path]:
    """``folder`` or up to two folders above it (``RUN/best``, ``RUN/checkpoints/step-…``) with a config.yaml."""
    folder = Path(folder)
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def run_backend(folder: Path) -> str:
    """The backend a run folder (or its best/, checkpoints/step-…) was trained on: ``run_info.json``, else mlx."""
    folder = Path(folder)
    for candidate in (folder, folder.parent, folder.parent.parent):
        path = candidate / RUN_INFO
        if path.is_file():
            info = read_json(path)
            if info is None:
                raise RunError(f"{path}: invalid JSON")
            backend = str(info.get("backend", "mlx"))
            if backend not in ("mlx", "torch"):
                raise RunError(f"{path}: names an unknown backend '{backend}'")
            return backend
    return "mlx"


def _method(folder: Path, backend: str, purpose: str) -> str:
    """lora / dora / full, checking that the files of that method are there."""
    if backend == "mlx":
        _require(folder, MLX_FILES, purpose)
        cfg = read_json(folder / "adapter_config.json")
        if cfg is None:
            raise RunError(f"{folder / 'adapter_config.json'}: invalid JSON")
        return str(cfg.get("fine_tune_type", "lora"))
    if (folder / "optimizer.pt").is_file():  # a checkpoint: PEFT-internal names, not the model's
        missing = ", ".join(n for n in PEFT_FILES if not (folder / n).is_file())
        raise RunError(f"{folder}: torch checkpoints are for resuming (missing {missing}); {purpose} the run "
                       f"folder or its best/")
    if (folder / FULL_TORCH_FILE).is_file() and not (folder / "adapter_config.json").is_file():
        return "full"
    _require(folder, PEFT_FILES, purpose)
    cfg = read_json(folder / "adapter_config.json")
    if cfg is None:
        raise RunError(f"{folder / 'adapter_config.json'}: invalid JSON")
    return "dora" if cfg.get("use_dora") else "lora"


def _require(folder: Path, names: tuple[str, ...], purpose: str) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise RunError(f"{folder}: no tuned weights to {purpose} (missing {', '.join(missing)})",
                       hint="a run saves them at its first checkpoint; pass the run folder or its best/")


def run_config(run_dir: Path, overrides: Optional[dict[str, Any]] = None) -> "Config":
    """The run's ``config.yaml`` (plus ``overrides``, the flags of a ``train --resume``), as a Config."""
    from mlxsft.config import load_config

    try:
        return load_config(Path(run_dir) / "config.yaml", overrides)
    except MlxsftError as e:
        raise RunError(f"{run_dir}: cannot read the run's config ({e})") from None


def read_json(path: Path) -> Optional[dict[str, Any]]:
    """A JSON object from ``path``; None when the file is missing, not JSON or not an object."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """``metrics.jsonl``'s rows; a line cut by a kill is skipped."""
    rows: list[dict[str, Any]] = []
    path = Path(run_dir) / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows
