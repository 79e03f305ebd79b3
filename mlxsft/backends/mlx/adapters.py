"""Make an mlx-lm model trainable: LoRA / DoRA module swaps (mlx-lm's own layers) or full fine-tuning.

The adapter config written next to the weights is mlx-lm's, so
``mlx_lm.load(model, adapter_path=RUN)`` rebuilds exactly the same layers.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from mlxsft.backends.targets import adapted_layers, select_targets
from mlxsft.config import LoraConfig
from mlxsft.errors import ConfigError

LINEAR_TYPES = (nn.Linear, nn.QuantizedLinear)


def _layers(model: nn.Module) -> list[nn.Module]:
    return list(model.layers)


def select_keys(model: nn.Module, target_modules: list[str]) -> list[str]:
    """Module paths inside a transformer block to adapt, e.g. ``self_attn.q_proj`` (rules: ``backends/targets.py``)."""
    found = [path for path, module in _layers(model)[0].named_modules() if isinstance(module, LINEAR_TYPES) and path]
    return select_targets(found, target_modules)


def adapter_config(cfg: LoraConfig, model: nn.Module) -> dict[str, Any]:
    """mlx-lm's adapter_config.json content for this run."""
    num_layers = len(adapted_layers(len(_layers(model)), cfg.num_layers))
    out: dict[str, Any] = {"fine_tune_type": cfg.method, "num_layers": num_layers}
    if cfg.method != "full":
        out["lora_parameters"] = {
            "rank": cfg.rank,
            "scale": cfg.alpha / cfg.rank,
            "dropout": cfg.dropout,
            "keys": select_keys(model, cfg.target_modules),
        }
    return out


def make_trainable(model: nn.Module, cfg: LoraConfig) -> dict[str, Any]:
    """Freeze the base, swap in adapters (or unfreeze for full FT). Returns the adapter config."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    acfg = adapter_config(cfg, model)
    model.freeze()
    if cfg.method == "full":
        layers = _layers(model)
        for layer in layers[len(layers) - acfg["num_layers"]:]:
            layer.unfreeze()
        if cfg.train_embeddings:
            for name in ("embed_tokens", "lm_head"):
                for holder in (model, getattr(model, "model", None)):
                    if holder is not None and name in holder:
                        holder[name].unfreeze()
        else:
            # final norm belongs to the blocks' output path; train it with them
            inner = getattr(model, "model", model)
            if "norm" in inner:
                inner["norm"].unfreeze()
        if any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules()):
            raise ConfigError("method full: the base is quantized; use --method lora (QLoRA) or drop --quantize")
    else:
        linear_to_lora_layers(model, acfg["num_layers"], acfg["lora_parameters"], use_dora=cfg.method == "dora")
    return acfg


def trainable_parameters(model: nn.Module) -> dict[str, mx.array]:
    return dict(tree_flatten(model.trainable_parameters()))


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; quantized weights counted at their logical size."""
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.QuantizedLinear):
            total += m.weight.size * 32 // m.bits
    for k, v in tree_flatten(model.parameters()):
        if not (k.endswith(".scales") or k.endswith(".biases")) or "lora" in k:
            if not any(k.endswith(s) for s in (".weight",)) or v.dtype != mx.uint32:
                total += v.size
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    return trainable, total
