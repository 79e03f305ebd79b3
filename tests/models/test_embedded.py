"""The real embedded SmolLM2: ``mlxsft convert`` then mlx-lm itself generates, and the converted model's
logits equal transformers' on the same GGUF (both de-quantize it the same way; fp32)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol_mlx(tmp_path_factory):
    out = tmp_path_factory.mktemp("smol") / "smol-mlx"
    r = run_cli("convert", "--model", "smollm2-135m-instruct", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_mlx_lm_generate_runs_on_the_converted_folder(smol_mlx):
    r = subprocess.run([sys.executable, "-m", "mlx_lm", "generate", "--model", str(smol_mlx), "--prompt", "hi",
                        "--max-tokens", "5"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    answer = r.stdout.split("==========")[1].strip()
    assert answer and "Generation: " in r.stdout


def test_logits_match_transformers_on_the_same_gguf(smol_mlx, smol_gguf, smol_tokenizer):
    import mlx.core as mx
    import torch
    from mlx_lm import load
    from transformers import AutoModelForCausalLM

    ids = smol_tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                             add_generation_prompt=True, return_dict=False)
    hf = AutoModelForCausalLM.from_pretrained(smol_gguf.parent, gguf_file=smol_gguf.name, dtype=torch.float32)
    with torch.no_grad():
        ref = hf.eval()(torch.tensor([ids])).logits.numpy()
    model, _ = load(str(smol_mlx))
    out = np.array(model(mx.array([ids])))
    diff = np.abs(out - ref).max()
    assert diff < 1e-3, diff


def test_chat_template_survives_and_load_tokenizer_uses_the_cache(smol_mlx, smol_tokenizer, tmp_path, monkeypatch):
    from mlxsft.models import load_tokenizer, resolve_model
    from mlxsft.models.cache import COMPLETE, content_key, entry_dir

    # put the CLI's output where the cache would have written it: load_tokenizer must find it, not convert
    monkeypatch.setenv("MLXSFT_CACHE", str(tmp_path))
    src = resolve_model("smollm2-135m-instruct")
    entry = shutil.copytree(smol_mlx, entry_dir(src.name, content_key(src.path), "float16"))
    (entry / COMPLETE).touch()
    tok = load_tokenizer("smollm2-135m-instruct")
    assert tok.chat_template == smol_tokenizer.chat_template is not None
    assert len(list((tmp_path / "models").iterdir())) == 1
