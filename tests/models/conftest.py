"""Fixtures for the model-layer tests: tiny HF folders per architecture, their MLX conversions, and
helpers to run the CLI as a user would (a subprocess, so exit codes and stderr are the real ones)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny import tiny_hf_model

ROOT = Path(__file__).resolve().parents[2]


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


def run_cli(*args: str, timeout: int = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m mlxsft ARGS`` with the test environment (isolated cache, Hub offline)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mlxsft", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=full_env)


def leftovers(parent: Path, name: str) -> list[str]:
    """The output folder or any hidden temp folder of it left in ``parent``."""
    return sorted(p.name for p in parent.iterdir() if p.name == name or p.name.startswith(f".{name}.tmp-")
                  or p.name.startswith(".mlxsft-gguf-"))
