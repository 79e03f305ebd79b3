"""``--format mlx``: a plain mlx-lm folder (``mlx_lm.load`` + ``generate``) with the adapter model's logits,
its stop tokens and chat template; ``--quantize`` quantizes after fusing."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np

from mlxsft.export import ExportOptions, export_run
from tests.export.conftest import IDS, assert_adapter_matters, mlx_logits


def test_mlx_export_loads_generates_and_matches_the_adapter_model(mlx_llama_run, tmp_path):
    from mlx_lm import generate, load

    tuned = mlx_logits(mlx_llama_run)
    assert_adapter_matters(tuned, mlx_logits(mlx_llama_run, adapters=False))
    out = tmp_path / "mlx"
    result = export_run(ExportOptions(run=str(mlx_llama_run), format="mlx", out=str(out)))
    model, tokenizer = load(str(out))
    assert not any(hasattr(m, "lora_a") for _, m in model.named_modules())  # fused: no adapter layers left
    np.testing.assert_allclose(np.array(model(mx.array([IDS]))[0]), tuned, atol=1e-4)
    assert 2 in tokenizer.eos_token_ids  # <|im_end|>, the end of turn: mlx-lm stops there
    template = (mlx_llama_run / "chat_template.jinja").read_text()
    assert (out / "chat_template.jinja").read_text() == template
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True)
    text = generate(model, tokenizer, prompt=prompt, max_tokens=4)
    assert isinstance(text, str) and text  # greedy: 4 tokens of a random tiny model, or fewer if it stops
    assert "README.md" in result.files and result.precision == "float32"


def test_mlx_export_quantized_is_mlx_lms_fuse_then_quantize(mlx_llama_run, tmp_path):
    import mlx.nn as nn
    from mlx.utils import tree_unflatten
    from mlx_lm import load
    from mlx_lm.utils import load_adapters, quantize_model

    from mlxsft.models import load_mlx

    out = tmp_path / "mlx4"
    result = export_run(ExportOptions(run=str(mlx_llama_run), format="mlx", out=str(out), quantize=4))
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["bits"] == 4 and config["quantization"]["group_size"] == 64
    model, _ = load(str(out))
    quantized = [n for n, m in model.named_modules() if isinstance(m, nn.QuantizedLinear)]
    assert len(quantized) == 2 * 7  # every linear layer of the 2 blocks
    # the reference, by hand with mlx-lm: base + adapters, fuse, quantize
    ref, _, folder = load_mlx((mlx_llama_run / "base_model.txt").read_text().splitlines()[0])
    load_adapters(ref, str(mlx_llama_run))
    ref.update_modules(tree_unflatten([(n, m.fuse()) for n, m in ref.named_modules() if hasattr(m, "fuse")]))
    ref, _ = quantize_model(ref, json.loads((folder / "config.json").read_text()), 64, 4)
    expected = np.array(ref(mx.array([IDS]))[0])
    np.testing.assert_allclose(np.array(model(mx.array([IDS]))[0]), expected, atol=1e-4)
    assert "4-bit" in result.precision
