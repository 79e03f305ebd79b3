"""convert_model / load_mlx: logits match transformers, dtype and quantization options, tokenizer kept."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mlxsft.errors import ModelError
from mlxsft.models import convert_model, load_mlx
from tests.models.conftest import leftovers

# token ids spread over the vocabulary; 12 tokens stay inside the tiny gemma3's 16-token sliding window
IDS = (np.arange(1, 41) * 997 % 49152).reshape(1, -1)


def hf_logits(folder, ids):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.numpy()


def mlx_logits(model, ids):
    import mlx.core as mx

    return np.array(model(mx.array(ids)).astype(mx.float32))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_logits_match_transformers_fp32(arch, tiny_dirs):
    # The tiny gemma3 has only sliding layers, which mlx-lm cannot express beyond the window (see
    # config_fixes.py); test_gemma3_interleaved_beyond_the_window covers longer inputs.
    ids = IDS[:, :12] if arch == "gemma3" else IDS
    model, _, folder = load_mlx(str(tiny_dirs[arch]))
    diff = np.abs(mlx_logits(model, ids) - hf_logits(tiny_dirs[arch], ids)).max()
    assert diff < 1e-3, f"{arch}: max abs logit diff {diff}"
    assert json.loads((folder / "mlxsft.json").read_text())["dtype"] == "float32"


def test_gemma3_interleaved_beyond_the_window(tmp_path, smol_tokenizer_dir):
    """Sliding and global layers with an input longer than the window: masks and both RoPE bases agree."""
    import torch
    from transformers import AutoModelForCausalLM

    from tests.tiny import tiny_config

    cfg = tiny_config("gemma3", vocab_size=49152)
    cfg.layer_types = ["sliding_attention", "full_attention"]
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).save_pretrained(tmp_path / "g")
    for f in smol_tokenizer_dir.iterdir():
        shutil.copy(f, tmp_path / "g" / f.name)
    model, _, _ = load_mlx(str(tmp_path / "g"))
    assert IDS.shape[1] > cfg.sliding_window
    diff = np.abs(mlx_logits(model, IDS) - hf_logits(tmp_path / "g", IDS)).max()
    assert diff < 1e-3, diff


def test_converted_folder_loads_with_mlx_lm_and_keeps_the_chat_template(tmp_path, tiny_llama_dir, smol_tokenizer):
    from mlx_lm import generate, load
    from transformers import AutoTokenizer

    out = convert_model(str(tiny_llama_dir), tmp_path / "out")
    model, tok = load(str(out))  # plain mlx-lm, no mlxsft involved
    assert isinstance(generate(model, tok, prompt="hi", max_tokens=3), str)
    assert AutoTokenizer.from_pretrained(out).chat_template == smol_tokenizer.chat_template
    info = json.loads((out / "mlxsft.json").read_text())
    assert (info["kind"], info["quantize"]) == ("hf", None)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype(dtype, tmp_path, tiny_llama_dir):
    from safetensors import safe_open

    out = convert_model(str(tiny_llama_dir), tmp_path / "out", dtype=dtype)
    with safe_open(str(out / "model.safetensors"), "numpy" if dtype == "float16" else "pt") as f:
        w = f.get_tensor("model.layers.0.self_attn.q_proj.weight")
    assert str(w.dtype).endswith(dtype)


@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_convert_loads(bits, tmp_path, tiny_llama_dir):
    import mlx.nn as nn
    from mlx_lm import load

    out = convert_model(str(tiny_llama_dir), tmp_path / "q", quantize=bits, group_size=32)
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["bits"] == bits and config["quantization"]["group_size"] == 32
    model, _ = load(str(out))
    assert isinstance(model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    ref = hf_logits(tiny_llama_dir, IDS[:, :8])
    rel = np.linalg.norm(mlx_logits(model, IDS[:, :8]) - ref) / np.linalg.norm(ref)
    assert rel < (0.05 if bits == 8 else 0.6), rel  # near fp32 (random weights quantize poorly)
    with pytest.raises(ModelError, match="already quantized"):
        convert_model(str(out), tmp_path / "qq", quantize=4)
    assert leftovers(tmp_path, "qq") == []


def test_load_mlx_quantizes_in_memory_only(tiny_llama_dir):
    import mlx.nn as nn

    model, _, folder = load_mlx(str(tiny_llama_dir), quantize=4)
    assert isinstance(model.layers[0].mlp.down_proj, nn.QuantizedLinear)
    assert "quantization" not in json.loads((folder / "config.json").read_text())  # the cached copy is not


def test_out_must_be_new_or_empty(tmp_path, tiny_llama_dir):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ModelError, match="not an empty folder"):
        convert_model(str(tiny_llama_dir), busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (convert_model(str(tiny_llama_dir), empty) / "config.json").is_file()


def test_failure_leaves_nothing_behind(tmp_path, tiny_llama_dir):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_llama_dir, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "model_type": "no_such_arch"}))
    with pytest.raises(ModelError, match="unsupported architecture 'no_such_arch'"):
        convert_model(str(bad), tmp_path / "new" / "out")
    assert leftovers(tmp_path, "new") == []  # not even the parent it had to create


def test_bad_options(tmp_path, tiny_llama_dir):
    for kw in ({"dtype": "float64"}, {"quantize": 7}, {"group_size": 100}):
        with pytest.raises(ModelError):
            convert_model(str(tiny_llama_dir), tmp_path / "x", **kw)
    assert leftovers(tmp_path, "x") == []
