"""Load a model for the torch backend through transformers, from any spec ``mlxsft.models`` resolves.

    model, tokenizer, source = load_model("smollm2-135m-instruct", plan)      # plan: device.DevicePlan
    write_run_info(run_dir, base_model=spec, method="lora")   # read back by mlxsft.runs.read.run_backend

HF folders load directly; a ``.gguf`` file is dequantised by transformers (``gguf_file=``); an
unquantised MLX folder is HF-format safetensors too. An MLX *quantised* folder has packed uint32 weights
transformers cannot read, so it is refused with a hint. Attention is SDPA, which takes the packed
block-diagonal masks of ``loss.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlxsft.errors import ModelError



def _from_pretrained(source: Any, dtype: Any, trust_remote_code: bool) -> Any:
    from transformers import AutoModelForCausalLM

    path = Path(source.path)
    kw: dict[str, Any] = dict(dtype=dtype, attn_implementation="sdpa", trust_remote_code=trust_remote_code)
    if path.suffix == ".gguf":
        return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, **kw)
    cfg_file = path / "config.json"
    if cfg_file.is_file() and "quantization" in json.loads(cfg_file.read_text()):
        raise ModelError(f"{path}: an MLX-quantised model cannot be loaded by torch",
                         hint="use its unquantised HF original, or --backend mlx")
    return AutoModelForCausalLM.from_pretrained(str(path), use_safetensors=True, **kw)  # never a pickled .bin


def load_model(spec: str, plan: Any, *, trust_remote_code: bool = False) -> tuple[Any, Any, Any]:
    """(transformers model on ``plan.device`` in ``plan.param_dtype``, HF tokenizer, ModelSource)."""
    from mlxsft.models import resolve_model

    source = resolve_model(spec, trust_remote_code=trust_remote_code)
    if source.format == "gguf":  # lengths, offsets and the de-quantized size, before transformers reads it
        from mlxsft.models.from_gguf import check_gguf

        check_gguf(Path(source.path))
    try:
        model = _from_pretrained(source, plan.param_dtype, trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{source.path}: transformers cannot load this model ({e})",
                         hint="try --backend mlx") from None
    model.to(plan.device)
    model.config.use_cache = False  # training forward passes; generate() turns it back on
    return model, _tokenizer(spec, source), source


def _tokenizer(spec: str, source: Any) -> Any:
    """The tokenizer the MLX backend uses too (same ids, same masks). For a GGUF that is the tokenizer of
    its MLX conversion; where mlx is not installed, the same tokenizer read from the GGUF directly."""
    from mlxsft.models import load_tokenizer

    try:
        return load_tokenizer(spec)
    except ImportError:
        if Path(source.path).suffix != ".gguf":
            raise
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(Path(source.path).parent), gguf_file=Path(source.path).name)


def write_run_info(run_dir: Path, *, base_model: str, method: str) -> None:
    """``run_info.json``: tells chat/eval this run folder holds a torch (PEFT or full) result."""
    from mlxsft.files import atomic_write_json
    from mlxsft.runs.read import RUN_INFO

    atomic_write_json(Path(run_dir) / RUN_INFO, {"backend": "torch", "base_model": base_model, "method": method})
