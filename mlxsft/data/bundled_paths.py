"""Where the bundled dataset (shipped inside the package) lives.

    from mlxsft.data.bundled_paths import bundled_path
    bundled_path("train")   # .../mlxsft/data/bundled/train.jsonl (also "valid", "eval", "general")
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_SPLITS = ("train", "valid", "eval")


def bundled_path(split: str) -> Path:
    import mlxsft.data.bundled as bundled

    return Path(bundled.__file__).parent / f"{split}.jsonl"
