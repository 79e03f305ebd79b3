"""Fixtures for the model-layer tests: tiny HF folders per architecture, their MLX conversions, and what a
failed conversion leaves behind. The CLI runs as a user runs it through ``tests.helpers.run_cli``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny import tiny_hf_model


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory, tiny_llama_dir, smol_tokenizer_dir) -> dict[str, Path]:
    """arch -> a tiny random HF folder (llama from the shared fixture, the others built here)."""
    dirs = {"llama": tiny_llama_dir}
    for arch in ("qwen2", "gemma3"):
        dirs[arch] = tiny_hf_model(tmp_path_factory.mktemp(f"tiny-{arch}"), arch, smol_tokenizer_dir)
    return dirs


@pytest.fixture(scope="session")
def tiny_mlx_dir(tmp_path_factory, tiny_llama_dir) -> Path:
    from mlxsft.models import convert_model

    return convert_model(str(tiny_llama_dir), tmp_path_factory.mktemp("tiny-mlx") / "llama")


def leftovers(parent: Path, name: str) -> list[str]:
    """The output folder or any hidden temp folder of it left in ``parent``."""
    return sorted(p.name for p in parent.iterdir() if p.name == name or p.name.startswith(f".{name}.tmp-")
                  or p.name.startswith(".mlxsft-gguf-"))
