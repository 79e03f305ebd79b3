"""Make a transformers model trainable: LoRA / DoRA through peft, or full fine-tuning.

    model = make_trainable(model, cfg.lora)      # a peft.PeftModel, or the model with blocks unfrozen
    weights = trainable_state(model)             # {name: tensor} of what the optimizer updates

Module selection follows the MLX backend exactly (``mlxsft/backends/mlx/adapters.py``): the linear
layers inside the last ``num_layers`` transformer blocks, ``all-linear`` or by name. They are handed to
peft as full module paths, so both backends adapt the same layers and peft never guesses. The scale is
``alpha / rank`` in both (plain LoRA scaling, not rsLoRA).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from mlxsft.backends.targets import adapted_layers, select_targets
from mlxsft.config import LoraConfig
from mlxsft.errors import ConfigError


def decoder_layers(model: Any) -> Any:
    """The ModuleList of transformer blocks (``model.model.layers`` for llama-style models)."""
    import torch.nn as nn

    n = getattr(model.config, "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) and (n is None or len(module) == n):
            return module
    raise ConfigError("cannot find the transformer blocks of this model")


def _layers_prefix(model: Any) -> str:
    layers = decoder_layers(model)
    return next(name for name, m in model.named_modules() if m is layers)


def select_modules(model: Any, cfg: LoraConfig) -> list[str]:
    """Full paths of the linear layers to adapt, e.g. ``model.layers.1.self_attn.q_proj``."""
    import torch.nn as nn

    layers = decoder_layers(model)
    found = sorted(p for p, m in layers[0].named_modules() if isinstance(m, nn.Linear) and p)
    keys = select_targets(found, cfg.target_modules)
    prefix = _layers_prefix(model)
    return [f"{prefix}.{i}.{k}" for i in adapted_layer_indices(model, cfg) for k in keys]


def adapted_layer_indices(model: Any, cfg: LoraConfig) -> range:
    return adapted_layers(len(decoder_layers(model)), cfg.num_layers)


@contextmanager
def peft_quietly() -> Iterator[None]:
    """peft reads transformers 5's deprecated ``is_gradient_checkpointing``: a FutureWarning on every model it
    wraps, about code the user does not own."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def make_trainable(model: Any, cfg: LoraConfig) -> Any:
    """Freeze the base and add adapters (returns a PeftModel), or unfreeze for full fine-tuning."""
    if cfg.method == "full":
        return _unfreeze_for_full(model, cfg)
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_cfg = PeftLoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                              target_modules=select_modules(model, cfg), use_dora=cfg.method == "dora",
                              bias="none", task_type="CAUSAL_LM")
    with peft_quietly():
        return get_peft_model(model, peft_cfg)


def _unfreeze_for_full(model: Any, cfg: LoraConfig) -> Any:
    model.requires_grad_(False)
    layers = decoder_layers(model)
    for i in adapted_layer_indices(model, cfg):
        layers[i].requires_grad_(True)
    if cfg.train_embeddings:
        model.get_input_embeddings().requires_grad_(True)
        model.get_output_embeddings().requires_grad_(True)  # the same tensor when tied
    else:
        # the final norm sits on the blocks' output path; train it with them (as the MLX backend does)
        norm = getattr(getattr(model, "model", model), "norm", None)
        if norm is not None:
            norm.requires_grad_(True)
    return model


def trainable_state(model: Any) -> dict[str, Any]:
    """{parameter name: tensor} of every trainable parameter (tied tensors once)."""
    out: dict[str, Any] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out[name] = p
    return out


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; tied weights counted once."""
    total = sum(p.numel() for p in model.parameters())  # parameters() already skips shared tensors
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
