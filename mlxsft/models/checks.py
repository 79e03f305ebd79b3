"""Cheap checks on model files, each failing with one ``ModelError`` line that names the file.

Run before any heavy work so that a bad input fails in milliseconds and before anything is written:

    config = read_config(folder)          # config.json present and valid JSON
    check_model_code(config, folder, trust_remote_code=False)   # no model_file to run unless trusted
    weights = safetensors_files(folder)   # every header parses and covers its file
    check_architecture(config, folder)    # mlx-lm has a model class for it
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlxsft.errors import ModelError


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError(f"{folder}: not a model folder (no config.json)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return config


def check_model_code(config: dict[str, Any], folder: Path, *, trust_remote_code: bool) -> None:
    """mlx-lm imports and runs ``config["model_file"]`` (a .py beside the weights) to build such a model."""
    model_file = config.get("model_file")
    if model_file is not None and not trust_remote_code:
        raise ModelError(f"{folder / 'config.json'}: asks to run the model code in {str(model_file)!r}; refused "
                         "(pass --trust-remote-code to run it, only for a model whose code you trust)")


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files, each checked to have a valid header that covers the whole file."""
    from safetensors import SafetensorError, safe_open

    files = sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{folder}: no .safetensors weights (only safetensors checkpoints are supported)")
    for f in files:
        try:
            # Reads only the header; safetensors checks that its offsets cover the file exactly,
            # which catches truncated downloads and files that are not safetensors at all.
            with safe_open(str(f), "numpy"):
                pass
        except (SafetensorError, OSError) as e:
            raise ModelError(f"{f}: corrupt safetensors file ({first_line(e)})") from None
    return files


def is_mlx_folder(folder: Path, config: dict[str, Any]) -> bool:
    """mlx-lm writes ``{"format": "mlx"}`` into every safetensors header; quantized MLX configs say so too."""
    if "quantization" in config:
        return True
    from safetensors import safe_open

    files = sorted(folder.glob("model*.safetensors"))
    if not files:
        return False
    with safe_open(str(files[0]), "numpy") as f:
        return (f.metadata() or {}).get("format") == "mlx"


def check_architecture(config: dict[str, Any], where: Path | str) -> None:
    """mlx-lm must have a model class for ``model_type`` (``Model type X not supported`` otherwise)."""
    import mlx_lm
    from mlx_lm.utils import _get_classes  # mlx-lm's own lookup, remappings included

    model_type = config.get("model_type")
    if not model_type:
        raise ModelError(f"{where}: config.json has no model_type")
    try:
        _get_classes(config)
    except ValueError:
        raise ModelError(f"{where}: unsupported architecture '{model_type}' (mlx-lm {mlx_lm.__version__} "
                         "has no model for it)") from None


def check_gguf_header(path: Path) -> None:
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ModelError(f"{path}: not a GGUF file (bad magic bytes)")


def first_line(e: BaseException, limit: int = 200) -> str:
    """A library exception as a short single line for an error message."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
