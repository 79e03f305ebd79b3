"""Load a tokenizer for ``mlxsft data stats/inspect --model M``.

    from mlxsft.data.tokenizer import load_tokenizer
    tok = load_tokenizer("smollm2-135m-instruct")   # alias, model folder, .gguf or Hub id
    tok = load_tokenizer("path/to/tokenizer-only/")  # a folder with just tokenizer files is enough here

Models go through ``mlxsft.models.load_tokenizer`` (aliases, GGUF, the conversion cache). Looking at data needs
no weights, so a folder holding only a tokenizer (no ``config.json``) is loaded directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlxsft.errors import ModelError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def load_tokenizer(spec: str) -> Any:
    folder = Path(spec).expanduser()
    if folder.is_dir() and not (folder / "config.json").exists() and any((folder / f).exists() for f in TOKENIZER_FILES):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError) as e:
            raise ModelError(f"{folder}: cannot load the tokenizer ({' '.join(str(e).split())[:200]})") from None
    from mlxsft.models import load_tokenizer as load_model_tokenizer

    return load_model_tokenizer(spec)
