"""Write a fused model as a Hugging Face transformers folder.

    write_hf(fused, Path("out"), dtype="float16", template=run.template, stops=stops)
    AutoModelForCausalLM.from_pretrained("out")          # the fused model, in transformers

The folder holds ``model.safetensors`` (sharded above 5 GB) with transformers' parameter names,
``config.json`` of the base (dtype updated), the tokenizer files, ``chat_template.jinja`` (the exact template
the run trained with) and ``generation_config.json`` whose ``eos_token_id`` lists EOS *and* the template's
end-of-turn token, so ``generate`` stops where the model learned to stop.

mlx-lm keeps Hugging Face parameter names for llama / qwen2 / gemma3 (its ``sanitize`` only drops
``rotary_emb.inv_freq`` and a tied ``lm_head``, which transformers re-ties from the config), so MLX weights
are written as they are; torch models write their ``state_dict`` without the tied ``lm_head``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlxsft.export.fuse import FusedModel
from mlxsft.export.stops import Stops

MAX_SHARD_GB = 5


def write_hf(fused: FusedModel, dst: Path, *, dtype: str, template: str, stops: Stops) -> None:
    """Write the transformers folder into the existing empty folder ``dst``."""
    dst = Path(dst)
    if fused.backend == "mlx":
        _write_mlx_weights(fused, dst, dtype)
    else:
        _write_torch_weights(fused, dst, dtype)
    config = dict(fused.hf_config)
    config["torch_dtype"] = dtype  # the name older readers use
    config["dtype"] = dtype  # transformers 5's name
    (dst / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    write_tokenizer(fused.hf_tokenizer, dst, template)
    write_generation_config(fused, dst, stops)


def write_tokenizer(hf_tokenizer: Any, dst: Path, template: str) -> None:
    """The tokenizer files, with the run's template as ``chat_template.jinja`` (the file transformers and
    mlx-lm read first)."""
    hf_tokenizer.chat_template = template
    hf_tokenizer.save_pretrained(str(dst))
    (dst / "chat_template.jinja").write_text(template, encoding="utf-8")


def write_generation_config(fused: FusedModel, dst: Path, stops: Stops) -> None:
    import transformers

    gen = {k: v for k, v in fused.generation_config.items() if k not in ("transformers_version", "_from_model_config")}
    if stops.ids:
        gen["eos_token_id"] = stops.ids if len(stops.ids) > 1 else stops.ids[0]
    tok = fused.hf_tokenizer
    if getattr(tok, "bos_token_id", None) is not None:
        gen.setdefault("bos_token_id", tok.bos_token_id)
    if getattr(tok, "pad_token_id", None) is not None:
        gen.setdefault("pad_token_id", tok.pad_token_id)
    if not stops.eot_is_token:
        # the end-of-turn marker is several tokens: transformers can still stop on it as text
        gen["stop_strings"] = [stops.eot_text]
    gen["transformers_version"] = transformers.__version__
    (dst / "generation_config.json").write_text(json.dumps(gen, indent=2, sort_keys=True) + "\n")


def _write_mlx_weights(fused: FusedModel, dst: Path, dtype: str) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import make_shards

    target = getattr(mx, dtype)
    weights = {k: (v.astype(target) if mx.issubdtype(v.dtype, mx.floating) else v)
               for k, v in tree_flatten(fused.model.parameters())}
    if _tied(fused.hf_config):
        weights.pop("lm_head.weight", None)
    shards = make_shards(weights, MAX_SHARD_GB)
    names = _shard_names(len(shards))
    weight_map: dict[str, str] = {}
    for name, shard in zip(names, shards):
        # "pt": the safetensors flavour transformers expects from a PyTorch-layout checkpoint
        mx.save_safetensors(str(dst / name), shard, metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    if len(shards) > 1:
        total = sum(v.nbytes for v in weights.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (dst / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def _write_torch_weights(fused: FusedModel, dst: Path, dtype: str) -> None:
    import torch
    from huggingface_hub import save_torch_state_dict

    target = getattr(torch, dtype)
    state = {k: (v.detach().to(target) if v.is_floating_point() else v.detach())
             for k, v in fused.model.state_dict().items()}
    if getattr(fused.model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # the same tensor as the embedding; transformers re-ties it
    save_torch_state_dict(state, dst, max_shard_size=f"{MAX_SHARD_GB}GB", metadata={"format": "pt"})


def _tied(config: dict[str, Any]) -> bool:
    tied = config.get("tie_word_embeddings")
    if tied is None:
        tied = (config.get("text_config") or {}).get("tie_word_embeddings", False)
    return bool(tied)


def _shard_names(n: int) -> list[str]:
    if n == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
