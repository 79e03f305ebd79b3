"""Convert any model spec into an mlx-lm folder (``mlx_lm.load(DIR)`` loads it, ``mlx_lm.generate`` runs it).

    from mlxsft.models import convert_model
    convert_model("smollm2-135m-instruct", "out/smol", dtype="float16", quantize=4)

HF and MLX folders go through mlx-lm's own load -> cast -> quantize -> save (what ``mlx_lm.convert`` does,
minus its prints); GGUF files are first de-quantized into a temporary HF folder (``from_gguf.py``). The
result is written atomically (``atomic.py``) and carries the tokenizer and chat template of its source,
plus ``mlxsft.json`` saying where it came from. A config.json naming a ``model_file`` (Python that mlx-lm
would run to build the model) is refused unless ``trust_remote_code``.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any, Callable

from mlxsft.errors import ModelError
from mlxsft.models import checks
from mlxsft.files import atomic_dir
from mlxsft.config import GROUP_SIZES as QUANTIZE_GROUP_SIZES
from mlxsft.config import QUANTIZE_BITS
from mlxsft.models.config_fixes import mlx_config_fixes
from mlxsft.models.resolve import ModelSource, resolve_model

Progress = Callable[[str, float], None]
DTYPES = ("float32", "float16", "bfloat16")
BITS, GROUP_SIZES = QUANTIZE_BITS, QUANTIZE_GROUP_SIZES  # one list, in mlxsft.config


def convert_model(spec: str, out: str | Path, *, dtype: str = "float32", quantize: int | None = None,
                  group_size: int = 64, progress: Progress | None = None, trust_remote_code: bool = False) -> Path:
    """Write the MLX conversion of ``spec`` to ``out`` (a new or empty folder) and return ``out``."""
    check_options(dtype, quantize, group_size)
    out = Path(out).expanduser().absolute()
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise ModelError(f"{out}: already exists and is not an empty folder; choose another --out")
    report = progress or _silent
    report("resolving the model", 0.0)
    source = resolve_model(spec, trust_remote_code=trust_remote_code)
    with atomic_dir(out) as tmp:
        write_mlx(source, tmp, dtype=dtype, quantize=quantize, group_size=group_size, progress=report,
                  trust_remote_code=trust_remote_code)
    report("done", 1.0)
    return out


def check_options(dtype: str, quantize: int | None, group_size: int) -> None:
    if dtype not in DTYPES:
        raise ModelError(f"dtype '{dtype}' is not one of {', '.join(DTYPES)}")
    if quantize is not None and quantize not in BITS:
        raise ModelError(f"quantize: {quantize} bits is not supported (use 4 or 8; also 2, 3, 5, 6)")
    if group_size not in GROUP_SIZES:
        raise ModelError(f"group size {group_size} is not supported (use 32, 64 or 128)")


def write_mlx(source: ModelSource, dst: Path, *, dtype: str = "float32", quantize: int | None = None,
              group_size: int = 64, progress: Progress | None = None, trust_remote_code: bool = False) -> None:
    """Convert ``source`` into the existing empty folder ``dst``."""
    report = progress or _silent
    if source.format == "gguf":
        # the de-quantized intermediate sits beside dst (same disk, cleaned up whatever happens)
        with tempfile.TemporaryDirectory(prefix=".mlxsft-gguf-", dir=dst.parent) as hf:
            from mlxsft.models.from_gguf import gguf_to_hf

            gguf_to_hf(source.path, Path(hf), _span(report, 0.0, 0.5))
            _hf_to_mlx(Path(hf), dst, dtype, quantize, group_size, _span(report, 0.5, 1.0), source.path, False)
    else:
        _hf_to_mlx(source.path, dst, dtype, quantize, group_size, report, source.path, trust_remote_code)
    _write_provenance(dst, source, dtype, quantize, group_size)


def _hf_to_mlx(src: Path, dst: Path, dtype: str, quantize: int | None, group_size: int, report: Progress,
               shown: Path, trust_remote_code: bool) -> None:
    import mlx.core as mx
    from mlx.utils import tree_map_with_path
    from mlx_lm.utils import load, save

    config = checks.read_config(src)
    checks.check_model_code(config, src, trust_remote_code=trust_remote_code)
    if quantize and "quantization" in config:
        raise ModelError(f"{shown}: already quantized; convert it without --quantize")
    if "model_file" not in config:  # a trusted model_file brings its own architecture
        checks.check_architecture(config, shown)
    checks.safetensors_files(src)
    report("loading weights", 0.05)
    try:
        # lazy: weights are read from disk only when save() evaluates them, one shard at a time
        model, tokenizer, config = load(str(src), model_config=mlx_config_fixes(config), lazy=True,
                                        return_config=True, trust_remote_code=trust_remote_code)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError, OSError) as e:
        raise ModelError(f"{shown}: cannot load the weights with mlx-lm ({checks.first_line(e)})") from None

    report(f"casting to {dtype}", 0.2)
    target = getattr(mx, dtype)
    cast = getattr(model, "cast_predicate", lambda _: True)  # some models keep e.g. router weights in fp32
    model.update(tree_map_with_path(
        lambda k, v: v.astype(target) if cast(k) and mx.issubdtype(v.dtype, mx.floating) else v,
        model.parameters()))
    config["torch_dtype"] = dtype  # what mlx_lm.convert and older readers look at
    if "dtype" in config:
        config["dtype"] = dtype  # transformers 5's name for it

    if quantize:
        report(f"quantizing to {quantize} bits (group size {group_size})", 0.3)
        model, config = quantize_in_memory(model, config, quantize, group_size)

    report("writing MLX weights", 0.4)
    try:
        save(dst, src, model, tokenizer, config)
    except (RuntimeError, ValueError) as e:  # a tensor that fails to read surfaces here, at evaluation
        raise ModelError(f"{shown}: cannot convert the weights ({checks.first_line(e)})") from None
    report("MLX folder written", 1.0)


def quantize_in_memory(model: Any, config: dict[str, Any], bits: int, group_size: int) -> tuple[Any, dict]:
    """mlx-lm's quantize_model (it skips layers whose width the group size does not divide), without its print."""
    from mlx_lm.utils import quantize_model

    with contextlib.redirect_stdout(io.StringIO()):
        return quantize_model(model, config, group_size, bits)


def _write_provenance(dst: Path, source: ModelSource, dtype: str, quantize: int | None, group_size: int) -> None:
    import mlx_lm

    from mlxsft import __version__

    info = {"spec": source.spec, "kind": source.kind, "name": source.name, "source": str(source.path),
            "format": source.format, "dtype": dtype, "quantize": quantize,
            "group_size": group_size if quantize else None, "mlxsft": __version__, "mlx_lm": mlx_lm.__version__}
    (dst / "mlxsft.json").write_text(json.dumps(info, indent=2) + "\n")


def _span(report: Progress, lo: float, hi: float) -> Progress:
    """A callback that maps a sub-step's 0..1 onto ``lo..hi`` of the whole conversion."""
    return lambda stage, frac: report(stage, lo + (hi - lo) * max(0.0, min(1.0, frac)))


def _silent(stage: str, fraction: float) -> None:
    pass
