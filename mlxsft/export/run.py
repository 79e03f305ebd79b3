"""Read a run folder of either backend: where its tuned weights are, its base model and how it was trained.

    run = read_run(Path("runs/sft-20261129-0712"))        # or RUN/best, or an MLX RUN/checkpoints/step-…
    run.backend, run.method, run.base_model, run.weights_dir

An MLX run keeps mlx-lm's ``adapters.safetensors`` + ``adapter_config.json`` (LoRA/DoRA adapters, or the
tuned tensors of a full fine-tune); a torch run (``run_info.json`` says ``"backend": "torch"``) keeps PEFT's
``adapter_model.safetensors`` + ``adapter_config.json`` for LoRA/DoRA and ``trainable.safetensors`` for full
fine-tuning. Every check here is cheap and runs before anything is loaded or written, so a bad ``--run``
fails in milliseconds with one line naming the folder and what is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from mlxsft.errors import MlxsftError, RunError

if TYPE_CHECKING:
    from mlxsft.config import Config

MLX_FILES = ("adapters.safetensors", "adapter_config.json")
PEFT_FILES = ("adapter_model.safetensors", "adapter_config.json")
FULL_TORCH_FILE = "trainable.safetensors"


@dataclass
class RunInfo:
    weights_dir: Path  # the folder holding the tuned weights (RUN, RUN/best, RUN/checkpoints/step-…)
    run_dir: Path  # the run root: config.yaml, metrics.jsonl, compare.json
    backend: str  # "mlx" | "torch"
    method: str  # "lora" | "dora" | "full"
    base_model: str  # the model spec the run trained on (or --model)
    config: Optional["Config"] = None
    template: Optional[str] = None  # chat_template.jinja: exactly what the run trained with
    metrics: list[dict[str, Any]] = field(default_factory=list)
    compare: Optional[dict[str, Any]] = None

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
        """A file-name-friendly name for the export (the run folder's name)."""
        return self.run_dir.resolve().name or "model"


def read_run(path: str | Path, model: Optional[str] = None) -> RunInfo:
    """The run at ``path``; ``model`` overrides the base model the run names (e.g. after moving it)."""
    weights_dir = Path(path).expanduser()
    if not weights_dir.is_dir():
        raise RunError(f"{weights_dir}: run folder not found")
    run_dir = _run_root(weights_dir)
    if run_dir is None:
        raise RunError(f"{weights_dir}: not a run folder (no config.yaml here or in the two folders above)")
    backend = _backend(run_dir)
    method = _method(weights_dir, backend)
    config = _load_config(run_dir)
    base = model or config.model.model
    template_file = run_dir / "chat_template.jinja"
    return RunInfo(weights_dir=weights_dir, run_dir=run_dir, backend=backend, method=method, base_model=base,
                   config=config, template=template_file.read_text(encoding="utf-8") if template_file.is_file() else None,
                   metrics=_read_metrics(run_dir), compare=_read_json(run_dir / "compare.json"))


def _run_root(folder: Path) -> Optional[Path]:
    """``folder`` or up to two folders above it (``RUN/best``, ``RUN/checkpoints/step-…``) with a config.yaml."""
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def _backend(run_dir: Path) -> str:
    info = _read_json(run_dir / "run_info.json")
    return str(info.get("backend", "mlx")) if info else "mlx"


def _method(folder: Path, backend: str) -> str:
    """lora / dora / full, checking that the files of that method are there."""
    if backend == "mlx":
        _require(folder, MLX_FILES)
        cfg = _read_json(folder / "adapter_config.json")
        if cfg is None:
            raise RunError(f"{folder / 'adapter_config.json'}: invalid JSON")
        return str(cfg.get("fine_tune_type", "lora"))
    if backend != "torch":
        raise RunError(f"{folder}: run_info.json names an unknown backend '{backend}'")
    if (folder / FULL_TORCH_FILE).is_file() and not (folder / "adapter_config.json").is_file():
        if (folder / "optimizer.pt").is_file():  # a checkpoint: PEFT-internal names, not the model's
            raise RunError(f"{folder}: torch checkpoints are for resuming; export the run folder or its best/")
        return "full"
    _require(folder, PEFT_FILES)
    cfg = _read_json(folder / "adapter_config.json")
    if cfg is None:
        raise RunError(f"{folder / 'adapter_config.json'}: invalid JSON")
    return "dora" if cfg.get("use_dora") else "lora"


def _require(folder: Path, names: tuple[str, ...]) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise RunError(f"{folder}: no tuned weights to export (missing {', '.join(missing)})",
                       hint="a run saves them at its first checkpoint; pass the run folder or its best/")


def _load_config(run_dir: Path) -> "Config":
    from mlxsft.config import load_config

    try:
        return load_config(run_dir / "config.yaml")
    except MlxsftError as e:
        raise RunError(f"{run_dir}: cannot read the run's config ({e})") from None


def _read_json(path: Path) -> Optional[dict[str, Any]]:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: the card just has one row less
            if isinstance(row, dict):
                rows.append(row)
    return rows
