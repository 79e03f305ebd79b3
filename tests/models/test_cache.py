"""mlx_model_path / load_tokenizer: convert once, keyed by content; MLX folders used as they are."""

from __future__ import annotations

import json
import shutil

from mlxsft.models import load_tokenizer, mlx_model_path
from mlxsft.models.cache import content_key


def test_second_call_is_a_cache_hit(tmp_path, monkeypatch, tiny_llama_dir):
    monkeypatch.setenv("MLXSFT_CACHE", str(tmp_path / "cache"))
    stages: list[str] = []
    first = mlx_model_path(str(tiny_llama_dir), progress=lambda stage, frac: stages.append(stage))
    assert "writing MLX weights" in stages and first.is_relative_to(tmp_path / "cache")
    stamp = (first / "model.safetensors").stat().st_mtime_ns

    stages.clear()
    assert mlx_model_path(str(tiny_llama_dir), progress=lambda stage, frac: stages.append(stage)) == first
    assert stages == [] and (first / "model.safetensors").stat().st_mtime_ns == stamp
    # the entry is complete and alone: no temp folders beside it
    assert [p.name for p in first.parent.iterdir()] == [first.name]


def test_key_follows_content_not_location(tmp_path, monkeypatch, tiny_llama_dir):
    monkeypatch.setenv("MLXSFT_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "copy"
    shutil.copytree(tiny_llama_dir, copy)
    assert content_key(copy) == content_key(tiny_llama_dir)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-5}))
    assert content_key(copy) != content_key(tiny_llama_dir)
    assert mlx_model_path(str(copy)) != mlx_model_path(str(tiny_llama_dir))
    assert mlx_model_path(str(tiny_llama_dir), dtype="bfloat16") != mlx_model_path(str(tiny_llama_dir))


def test_mlx_folder_is_used_as_is(tiny_mlx_dir):
    assert mlx_model_path(str(tiny_mlx_dir)) == tiny_mlx_dir


def test_load_tokenizer_has_the_chat_template(tiny_llama_dir, tiny_mlx_dir, smol_tokenizer):
    for spec in (tiny_llama_dir, tiny_mlx_dir):
        tok = load_tokenizer(str(spec))
        assert tok.chat_template == smol_tokenizer.chat_template
        assert tok("hello").input_ids == smol_tokenizer("hello").input_ids
