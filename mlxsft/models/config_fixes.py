"""HF config -> the keys mlx-lm reads: the one place where config differences are bridged.

transformers 5 writes RoPE settings as ``rope_parameters`` (nested per layer type for Gemma 3) and the
attention pattern as ``layer_types``; mlx-lm 0.32's llama / qwen2 / gemma3_text still read the older flat
keys (``rope_theta``, ``rope_scaling``, ``rope_local_base_freq``, ``sliding_window_pattern``) and silently
fall back to defaults when they are missing. Measured on SmolLM2 (rope_theta 1e5 vs the 1e4 default): a
max logit difference of 1.8 instead of 1e-5. ``mlx_config_fixes`` returns the flat keys to add; the
converted config.json keeps both, so it loads the same under either reader.

    model, tok = mlx_lm.utils.load(folder, model_config=mlx_config_fixes(config))
"""

from __future__ import annotations

from typing import Any


def mlx_config_fixes(config: dict[str, Any]) -> dict[str, Any]:
    fixes: dict[str, Any] = {}
    rope = config.get("rope_parameters")
    if isinstance(rope, dict):
        if "full_attention" in rope or "sliding_attention" in rope:  # per layer type (Gemma 3)
            full, local = rope.get("full_attention") or {}, rope.get("sliding_attention") or {}
            fixes.update(_flat_rope(full, config))
            if "rope_theta" in local and "rope_local_base_freq" not in config:
                fixes["rope_local_base_freq"] = local["rope_theta"]
        else:
            fixes.update(_flat_rope(rope, config))

    layer_types = config.get("layer_types")
    if str(config.get("model_type", "")).startswith("gemma3") and "sliding_window_pattern" not in config:
        pattern = _sliding_window_pattern(layer_types)
        if pattern is not None:
            fixes["sliding_window_pattern"] = pattern
        if isinstance(layer_types, list) and layer_types and "full_attention" not in layer_types:
            # mlx-lm's Gemma 3 cannot express "no global layer" (it indexes the cache of layer N-1), so
            # the last layer becomes global, with the sliding layers' RoPE base: exact for sequences up to
            # sliding_window. Real Gemma 3 checkpoints always interleave; only tiny test configs do not.
            local = fixes.get("rope_local_base_freq", config.get("rope_local_base_freq"))
            if local is not None:
                fixes["rope_theta"] = local
    return fixes


def _flat_rope(rope: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "rope_theta" in rope and "rope_theta" not in config:
        out["rope_theta"] = rope["rope_theta"]
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default" and not config.get("rope_scaling"):
        scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
        scaling.setdefault("type", kind)  # older mlx-lm models read "type", newer "rope_type"
        scaling.setdefault("rope_type", kind)
        out["rope_scaling"] = scaling
    return out


def _sliding_window_pattern(layer_types: Any) -> int | None:
    """Gemma 3 puts one full-attention layer every N layers; mlx-lm wants that N."""
    if not isinstance(layer_types, list) or not layer_types:
        return None
    if "full_attention" not in layer_types:
        return len(layer_types)  # all sliding: see mlx_config_fixes
    n = layer_types.index("full_attention") + 1
    expected = ["full_attention" if i % n == n - 1 else "sliding_attention" for i in range(len(layer_types))]
    return n if expected == layer_types else None
