"""``mlxsft convert`` as a user runs it: help, a quantized conversion, and every bad input failing with one
line on stderr, a non-zero exit code, no traceback and nothing left on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.models.conftest import leftovers


def test_help():
    r = run_cli("convert", "--help")
    assert r.returncode == 0
    for flag in ("--model", "--out", "--dtype", "--quantize", "--group-size", "gemma3-270m"):
        assert flag in r.stdout


def test_convert_quantized_then_load(tmp_path, tiny_llama_dir):
    from mlx_lm import generate, load

    r = run_cli("convert", "--model", str(tiny_llama_dir), "--out", str(tmp_path / "q4"), "--quantize", "4",
                "--group-size", "32", "--dtype", "float16")
    assert r.returncode == 0, r.stderr
    assert "4-bit" in r.stdout and "writing MLX weights" in r.stdout
    model, tok = load(str(tmp_path / "q4"))
    assert isinstance(generate(model, tok, prompt="hi", max_tokens=2), str)
    assert json.loads((tmp_path / "q4" / "mlxsft.json").read_text())["quantize"] == 4


def _bad_inputs(root: Path, tiny_llama_dir: Path, smol_gguf: Path) -> dict[str, list[str]]:
    (root / "no-config").mkdir()
    shutil.copytree(tiny_llama_dir, root / "corrupt")
    data = (root / "corrupt" / "model.safetensors").read_bytes()
    (root / "corrupt" / "model.safetensors").write_bytes(data[: len(data) // 3])
    shutil.copytree(tiny_llama_dir, root / "arch")
    config = json.loads((root / "arch" / "config.json").read_text())
    (root / "arch" / "config.json").write_text(json.dumps({**config, "model_type": "no_such_arch"}))
    with smol_gguf.open("rb") as f:
        (root / "cut.gguf").write_bytes(f.read(3_000_000))  # a GGUF cut short, like an interrupted copy
    (root / "busy").mkdir()
    (root / "busy" / "keep.txt").write_text("mine")
    return {
        "missing path": ["--model", str(root / "nope")],
        "no config.json": ["--model", str(root / "no-config")],
        "corrupt safetensors": ["--model", str(root / "corrupt")],
        "corrupt GGUF": ["--model", str(root / "cut.gguf")],
        "unsupported architecture": ["--model", str(root / "arch")],
        "unreachable Hub": ["--model", "someone/made-up-model-xyz"],
        "non-empty --out": ["--model", str(tiny_llama_dir), "--out", str(root / "busy")],
    }


def test_bad_inputs_fail_cleanly(tmp_path, tiny_llama_dir, smol_gguf):
    work = tmp_path / "work"
    work.mkdir()
    cases = _bad_inputs(work, tiny_llama_dir, smol_gguf)
    for name, args in cases.items():
        if "--out" not in args:
            args = [*args, "--out", str(tmp_path / "out")]
        r = run_cli("convert", *args, env={"HF_HUB_OFFLINE": "1"})
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0, name
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, r.stderr)
        assert "Traceback" not in r.stderr + r.stdout, name
        assert leftovers(tmp_path, "out") == [], name
        assert leftovers(work, "busy") == ["busy"] and [p.name for p in (work / "busy").iterdir()] == ["keep.txt"]
        assert not any(p.name.startswith(".") for p in work.iterdir()), name


@pytest.mark.parametrize("flag", [["--quantize", "3"], ["--dtype", "float64"], ["--group-size", "100"]])
def test_bad_flags(flag, tmp_path):
    r = run_cli("convert", "--out", str(tmp_path / "out"), *flag)
    assert r.returncode == 2 and "Traceback" not in r.stderr and not (tmp_path / "out").exists()
