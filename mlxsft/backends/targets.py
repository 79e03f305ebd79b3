"""Which linear layers LoRA adapts, decided once for both backends from ``--target-modules``/``--num-layers``.

    keys = select_targets(["self_attn.q_proj", "mlp.down_proj", ...], ["q_proj"])   # -> ["self_attn.q_proj"]
    layers = adapted_layers(30, num_layers=16)                                     # -> range(14, 30)

``all-linear`` means every linear layer of a block; a plain name (``q_proj``) matches the last
component of a path, a dotted name (``mlp.down_proj``) the whole path. The last ``num_layers`` blocks are
adapted (-1: all), as in mlx-lm.
"""

from __future__ import annotations

from mlxsft.errors import ConfigError


def select_targets(found: list[str], target_modules: list[str]) -> list[str]:
    """The paths in ``found`` (linear layers inside one block) that ``target_modules`` selects, sorted."""
    if "all-linear" in target_modules:
        keys = list(found)
    else:
        keys = [p for p in found if p in target_modules or p.rsplit(".", 1)[-1] in target_modules]
        unknown = [t for t in target_modules if not any(p == t or p.rsplit(".", 1)[-1] == t for p in found)]
        if unknown:
            names = sorted({p.rsplit(".", 1)[-1] for p in found})
            raise ConfigError(f"target_modules: {', '.join(unknown)} not in the model (has {', '.join(names)})")
    if not keys:
        raise ConfigError("target_modules: no linear layer selected")
    return sorted(keys)


def adapted_layers(n_layers: int, num_layers: int) -> range:
    """Indices of the adapted blocks: the last ``num_layers`` of ``n_layers`` (all for -1)."""
    k = n_layers if num_layers < 0 else min(num_layers, n_layers)
    return range(n_layers - k, n_layers)
