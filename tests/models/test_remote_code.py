"""No model code runs unless asked: a config.json ``model_file`` (Python that mlx-lm imports to build the model)
is refused without ``trust_remote_code``, and a Hub download fetches ``*.py`` only with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlxsft.errors import ModelError
from tests.helpers import run_cli
from tests.models.conftest import leftovers


def with_model_file(src: Path, folder: Path, marker: Path) -> Path:
    """A copy of the model ``src`` whose config.json names ``evil.py``; running it writes ``marker``."""
    shutil.copytree(src, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_file": "evil.py"}))
    (folder / "evil.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
                                    "from mlx_lm.models.llama import Model, ModelArgs\n")
    return folder


def assert_refused(e: pytest.ExceptionInfo, folder: Path) -> None:
    msg = str(e.value)
    assert "\n" not in msg and str(folder / "config.json") in msg and "evil.py" in msg
    assert "--trust-remote-code" in msg


def test_convert_refuses_model_file(tmp_path, tiny_llama_dir):
    from mlxsft.models import convert_model

    marker = tmp_path / "ran.txt"
    folder = with_model_file(tiny_llama_dir, tmp_path / "model", marker)
    with pytest.raises(ModelError) as e:
        convert_model(str(folder), tmp_path / "out")
    assert_refused(e, folder)
    assert not marker.exists() and leftovers(tmp_path, "out") == []


def test_load_refuses_model_file_in_hf_and_mlx_folders(tmp_path, monkeypatch, tiny_llama_dir, tiny_mlx_dir):
    from mlxsft.models import load_mlx

    monkeypatch.setenv("MLXSFT_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "ran.txt"
    for src, name in ((tiny_llama_dir, "hf"), (tiny_mlx_dir, "mlx")):
        folder = with_model_file(src, tmp_path / name, marker)
        with pytest.raises(ModelError) as e:
            load_mlx(str(folder))
        assert_refused(e, folder)
    assert not marker.exists()
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


def test_trusted_model_file_runs(tmp_path, monkeypatch, tiny_llama_dir):
    """The opt-in reaches mlx-lm, which imports the file (here: llama's classes, plus the marker)."""
    from mlxsft.models import convert_model, load_mlx

    monkeypatch.setenv("MLXSFT_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "ran.txt"
    folder = with_model_file(tiny_llama_dir, tmp_path / "model", marker)
    out = convert_model(str(folder), tmp_path / "out", trust_remote_code=True)
    assert marker.read_text() == "ran" and (out / "evil.py").is_file()  # mlx-lm copies the code beside the weights
    marker.unlink()
    with pytest.raises(ModelError):  # the conversion still names the code: loading it needs the flag again
        load_mlx(str(out))
    assert not marker.exists()
    load_mlx(str(out), trust_remote_code=True)
    assert marker.exists()


def test_cli_refusal_is_one_line(tmp_path, tiny_llama_dir):
    marker = tmp_path / "ran.txt"
    folder = with_model_file(tiny_llama_dir, tmp_path / "model", marker)
    r = run_cli("convert", "--model", str(folder), "--out", str(tmp_path / "out"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "--trust-remote-code" in lines[0], r.stderr
    assert "Traceback" not in r.stderr + r.stdout and not marker.exists() and leftovers(tmp_path, "out") == []


def test_hub_download_fetches_python_only_when_trusted(tmp_path, monkeypatch, tiny_llama_dir):
    import huggingface_hub

    from mlxsft.models import load_mlx, resolve_model
    from mlxsft.models.hub import allow_patterns

    assert not any(p.endswith(".py") for p in allow_patterns())
    assert "*.py" in allow_patterns(trust_remote_code=True)
    assert {"*.json", "model*.safetensors"} <= set(allow_patterns())

    marker = tmp_path / "ran.txt"
    snapshot = with_model_file(tiny_llama_dir, tmp_path / "snapshot", marker)
    calls: list[dict] = []

    def fake_snapshot_download(repo_id, **kw):
        calls.append({"repo_id": repo_id, **kw})
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setenv("MLXSFT_CACHE", str(tmp_path / "cache"))
    assert resolve_model("someone/custom-code").path == snapshot
    resolve_model("someone/custom-code", trust_remote_code=True)
    assert [c["allow_patterns"] for c in calls] == [allow_patterns(), allow_patterns(True)]
    # a snapshot that already holds the code (an earlier trusted download) is still refused untrusted
    with pytest.raises(ModelError) as e:
        load_mlx("someone/custom-code")
    assert_refused(e, snapshot)
    assert not marker.exists()


def test_cli_trust_remote_code_flag_lets_the_model_code_run(tmp_path, tiny_llama_dir):
    marker = tmp_path / "ran.txt"
    folder = with_model_file(tiny_llama_dir, tmp_path / "model", marker)
    r = run_cli("convert", "--model", str(folder), "--out", str(tmp_path / "out"), "--trust-remote-code")
    assert r.returncode == 0, r.stderr
    assert marker.read_text() == "ran" and (tmp_path / "out" / "config.json").is_file()
