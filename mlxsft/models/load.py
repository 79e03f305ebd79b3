"""Load any model spec for training or chat, converting it once into the cache when needed.

    from mlxsft.models import load_mlx, load_tokenizer
    model, tokenizer, folder = load_mlx("smollm2-135m-instruct", quantize=4)   # QLoRA base
    hf_tok = load_tokenizer("smollm2-135m-instruct")                           # transformers tokenizer

MLX folders are used as they are; everything else is converted on first use into
``$MLXSFT_CACHE/models`` (see ``cache.py``), so ``train`` and ``chat`` on an alias convert once. A model whose
config.json names a ``model_file`` (Python that mlx-lm runs) loads only with ``trust_remote_code``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mlxsft.errors import ModelError
from mlxsft.models import cache, checks
from mlxsft.files import atomic_dir
from mlxsft.models.config_fixes import mlx_config_fixes
from mlxsft.models.convert import check_options, quantize_in_memory, write_mlx
from mlxsft.models.resolve import resolve_model

if TYPE_CHECKING:
    import mlx.nn as nn
    from mlx_lm.tokenizer_utils import TokenizerWrapper

Progress = Callable[[str, float], None]


def mlx_model_path(spec: str, *, dtype: str = "float32", progress: Progress | None = None,
                   trust_remote_code: bool = False) -> Path:
    """An unquantized MLX folder for ``spec`` (an MLX folder is returned as is, quantized or not)."""
    check_options(dtype, None, 64)
    source = resolve_model(spec, trust_remote_code=trust_remote_code)
    if source.is_mlx:
        return source.path
    entry = cache.entry_dir(source.name, cache.content_key(source.path), dtype)
    if cache.is_complete(entry):
        return entry
    cache.discard(entry)  # a folder without the marker may hold files a power loss cut: never trusted
    with atomic_dir(entry, exist_ok=True, marker=cache.COMPLETE) as tmp:
        write_mlx(source, tmp, dtype=dtype, progress=progress, trust_remote_code=trust_remote_code)
    if progress:
        progress("done", 1.0)
    return entry


def load_mlx(spec: str, *, dtype: str = "float32", quantize: int | None = None, group_size: int = 64,
             progress: Progress | None = None, trust_remote_code: bool = False
             ) -> tuple["nn.Module", "TokenizerWrapper", Path]:
    """(model, mlx-lm tokenizer, folder). ``quantize`` quantizes in memory (QLoRA); a base that is already
    quantized is returned as it is."""
    from mlx_lm.utils import load

    check_options(dtype, quantize, group_size)
    folder = mlx_model_path(spec, dtype=dtype, progress=progress, trust_remote_code=trust_remote_code)
    config = checks.read_config(folder)
    checks.check_model_code(config, folder, trust_remote_code=trust_remote_code)
    try:
        model, tokenizer, config = load(str(folder), model_config=mlx_config_fixes(config), return_config=True,
                                        trust_remote_code=trust_remote_code)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError, OSError) as e:
        raise ModelError(f"{folder}: cannot load the model with mlx-lm ({checks.first_line(e)})") from None
    if quantize and "quantization" not in config:
        model, _ = quantize_in_memory(model, config, quantize, group_size)
    return model, tokenizer, folder


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def load_tokenizer(spec: str) -> Any:
    """The transformers tokenizer of the (converted) model, chat template included when the model has one.

    A folder holding only a tokenizer (no ``config.json``) is loaded as it is: looking at data
    (``mlxsft data stats/inspect --model``) needs no weights.
    """
    from transformers import AutoTokenizer

    folder = Path(spec).expanduser()
    if folder.is_dir() and not (folder / "config.json").exists() and any((folder / f).exists() for f in TOKENIZER_FILES):
        try:
            return AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError) as e:
            raise ModelError(f"{folder}: cannot load the tokenizer ({checks.first_line(e)})") from None
    source = resolve_model(spec)
    if source.format == "gguf":
        # any cached conversion has the same tokenizer; convert (default dtype) only if there is none
        folder = cache.find_entry(cache.content_key(source.path)) or mlx_model_path(spec)
    else:
        folder = source.path  # the converted folder gets this very tokenizer
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as e:
        raise ModelError(f"{folder}: cannot load the tokenizer ({checks.first_line(e)})") from None
