"""Write a fused model as an MLX folder: ``mlx_lm.load(DIR)`` and ``mlx_lm.generate`` use it as it is.

    write_mlx_folder(fused, Path("out"), dtype="float16", quantize=4, group_size=64, template=..., stops=...,
                     scratch=Path("/tmp/x"))

MLX runs are saved with mlx-lm's own ``save`` (weights, config, tokenizer), after casting and, with
``quantize``, mlx-lm's quantization. Torch runs go through a float32 Hugging Face folder in ``scratch`` that
``mlxsft.models.convert`` turns into MLX exactly as ``mlxsft convert`` does. Either way the folder gets the
run's ``chat_template.jinja`` and a ``generation_config.json`` whose EOS ids include the end-of-turn token,
which mlx-lm reads as its stop tokens.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Optional

from mlxsft.export.fuse import FusedModel
from mlxsft.export.hf_format import write_generation_config, write_hf, write_tokenizer
from mlxsft.export.stops import Stops


def write_mlx_folder(fused: FusedModel, dst: Path, *, dtype: str, quantize: Optional[int], group_size: int,
                     template: str, stops: Stops, scratch: Path) -> None:
    """Write the MLX folder into the existing empty folder ``dst``."""
    if fused.backend == "mlx":
        _save_mlx(fused, dst, dtype, quantize, group_size, template)
    else:
        from mlxsft.models.convert import write_mlx
        from mlxsft.models.resolve import resolve_model

        hf = Path(scratch) / "hf"
        hf.mkdir(parents=True)
        write_hf(fused, hf, dtype="float32", template=template, stops=stops)
        write_mlx(resolve_model(str(hf)), dst, dtype=dtype, quantize=quantize, group_size=group_size)
        (dst / "mlxsft.json").unlink(missing_ok=True)  # it would name the scratch folder as the source
    write_tokenizer(fused.hf_tokenizer, dst, template)
    write_generation_config(fused, dst, stops)


def _save_mlx(fused: FusedModel, dst: Path, dtype: str, quantize: Optional[int], group_size: int,
              template: str) -> None:
    import mlx.core as mx
    from mlx.utils import tree_map_with_path
    from mlx_lm.utils import save

    from mlxsft.models.convert import quantize_in_memory

    model = fused.model
    target = getattr(mx, dtype)
    cast = getattr(model, "cast_predicate", lambda _: True)  # some models keep e.g. router weights in fp32
    model.update(tree_map_with_path(
        lambda k, v: v.astype(target) if cast(k) and mx.issubdtype(v.dtype, mx.floating) else v,
        model.parameters()))
    config = dict(fused.mlx_config)
    config["torch_dtype"] = dtype
    if "dtype" in config:
        config["dtype"] = dtype
    if quantize:
        model, config = quantize_in_memory(model, config, quantize, group_size)
    fused.hf_tokenizer.chat_template = template
    with contextlib.redirect_stdout(io.StringIO()):  # mlx-lm's model card helper may print
        save(dst, fused.base_folder, model, fused.mlx_tokenizer, config, donate_model=False)
