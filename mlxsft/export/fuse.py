"""Fuse a run's tuned weights into its base model, with the backend that trained it.

    fused = fuse_run(RunFolder.open("runs/sft-…"))     # FusedModel: plain layers, no adapters, no quantization
    fused.model        # an mlx-lm model (MLX runs) or a transformers model (torch runs)

MLX runs: the base loads exactly as in training (``load_mlx`` with the run's dtype and QLoRA quantization),
mlx-lm's ``load_adapters`` puts the adapters (or the full fine-tune's tensors) on it, and every LoRA/DoRA layer
is fused with its own ``.fuse(dequantize=True)`` (what ``mlx_lm.fuse --dequantize`` does); the rest of a QLoRA
base is de-quantized with mlx-lm's ``dequantize_model``. Torch runs: the base loads through the torch
backend's ``load_model`` on the CPU in float32, then peft's ``merge_and_unload`` (or the full fine-tune's
``trainable.safetensors``). A base model whose shapes or layer names do not fit the tuned weights is a
``RunError`` naming both, raised before anything is written.

``hf_config`` is the transformers ``config.json`` of the base: its own for a Hugging Face folder, the MLX
conversion's (itself written from transformers' config) for a GGUF or MLX base, without quantization keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from mlxsft.backends.generation import hf_tokenizer
from mlxsft.errors import RunError
from mlxsft.models.checks import first_line
from mlxsft.runs.read import RunFolder

Progress = Callable[[str, float], None]
QUANT_KEYS = ("quantization", "quantization_config")


@dataclass
class FusedModel:
    backend: str  # "mlx" | "torch"
    model: Any  # fused mlx-lm model, or merged transformers model (CPU, float32)
    hf_tokenizer: Any  # transformers tokenizer
    hf_config: dict[str, Any]  # transformers config.json of the base
    source: Any  # mlxsft.models.ModelSource of the base
    base_folder: Optional[Path] = None  # folder with the base's tokenizer files and generation_config.json
    mlx_tokenizer: Any = None  # mlx-lm TokenizerWrapper (MLX runs)
    mlx_config: dict[str, Any] = field(default_factory=dict)  # mlx-lm config.json of the base (MLX runs)

    @property
    def generation_config(self) -> dict[str, Any]:
        """The base's generation_config.json, if it has one."""
        for folder in (self.base_folder, getattr(self.source, "path", None)):
            if folder is not None and (Path(folder) / "generation_config.json").is_file():
                try:
                    return json.loads((Path(folder) / "generation_config.json").read_text())
                except json.JSONDecodeError:
                    return {}
        return {}


def fuse_run(run: RunFolder, progress: Optional[Progress] = None, *, trust_remote_code: bool = False) -> FusedModel:
    report = progress or (lambda stage, frac: None)
    if run.backend == "torch":
        return _fuse_torch(run, report, trust_remote_code)
    return _fuse_mlx(run, report, trust_remote_code)


def _fuse_mlx(run: RunFolder, report: Progress, trust_remote_code: bool) -> FusedModel:
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import dequantize_model, load_adapters

    from mlxsft.models import load_mlx, resolve_model
    from mlxsft.models.checks import read_config

    report("loading the base model", 0.0)
    kw = {k: v for k, v in run.load_kwargs.items() if v is not None}
    model, tokenizer, folder = load_mlx(run.base_model, trust_remote_code=trust_remote_code, **kw)
    report("fusing the adapters", 0.5)
    try:
        load_adapters(model, str(run.weights_dir))
    except (ValueError, KeyError, AttributeError, IndexError, TypeError) as e:
        raise RunError(f"{run.weights_dir}: the tuned weights do not fit the base model '{run.base_model}' "
                       f"({first_line(e)})", hint="pass the base the run trained on with --model") from None
    fused = [(name, m.fuse(dequantize=True)) for name, m in model.named_modules() if hasattr(m, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    model = dequantize_model(model)
    model.eval()
    source = resolve_model(run.base_model, trust_remote_code=trust_remote_code)
    mlx_config = _without_quantization(read_config(folder))
    hf_config = _without_quantization(read_config(source.path) if source.format == "hf" else dict(mlx_config))
    report("fused", 1.0)
    return FusedModel(backend="mlx", model=model, hf_tokenizer=hf_tokenizer(tokenizer),
                      hf_config=hf_config, source=source, base_folder=folder, mlx_tokenizer=tokenizer,
                      mlx_config=mlx_config)


def _fuse_torch(run: RunFolder, report: Progress, trust_remote_code: bool) -> FusedModel:
    import torch

    from mlxsft.backends.torch.checkpoint import load_full_weights
    from mlxsft.backends.torch.device import DevicePlan
    from mlxsft.backends.torch.model import load_model
    from mlxsft.models.checks import read_config

    report("loading the base model", 0.0)
    # CPU and float32: merging is a few matrix products, and exact in float32 whatever the training device
    plan = DevicePlan(device=torch.device("cpu"), param_dtype=torch.float32)
    model, hf_tok, source = load_model(run.base_model, plan, trust_remote_code=trust_remote_code)
    report("merging the adapters", 0.5)
    try:
        if run.method == "full":
            load_full_weights(model, run.weights_dir)
        else:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(run.weights_dir)).merge_and_unload()
    except (ValueError, RuntimeError, KeyError) as e:
        raise RunError(f"{run.weights_dir}: the tuned weights do not fit the base model '{run.base_model}' "
                       f"({first_line(e)})", hint="pass the base the run trained on with --model") from None
    model.eval()
    model.config.use_cache = True  # load_model turns it off for training
    if source.format == "hf" or source.format == "mlx":
        hf_config = read_config(source.path)
        base_folder = source.path
    else:  # GGUF: transformers' own config for it, as ``models/from_gguf.py`` writes it
        hf_config = model.config.to_dict()
        hf_config["architectures"] = [type(model).__name__]
        base_folder = None
    report("merged", 1.0)
    return FusedModel(backend="torch", model=model, hf_tokenizer=hf_tok, hf_config=_without_quantization(hf_config),
                      source=source, base_folder=base_folder)


def _without_quantization(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in config.items() if k not in QUANT_KEYS}
    out.pop("_name_or_path", None)
    out.pop("_model_name_or_path", None)
    return out
