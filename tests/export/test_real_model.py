"""The embedded SmolLM2-135M-Instruct, briefly tuned: exported to GGUF, its tokenizer metadata is the original
GGUF's and transformers' GGUF loader gives the tuned model's logits within f16 rounding; its adapters, exported
to the other framework, give the same logits there on the same fp32 weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlxsft.export import ExportOptions, export_run
from mlxsft.models.gguf_read import read_fields
from tests.export.conftest import assert_adapter_matters, mlx_logits, train_run
from tests.tiny import smol_gguf_path


@pytest.mark.slow
def test_smollm2_run_to_gguf(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mlxsft.models.from_gguf import _quiet_transformers

    run = train_run("smollm2-135m-instruct", None, tmp_path / "run", iters=2, max_rows=8, batch_size=2,
                    max_seq_len=96, learning_rate=2e-3, num_layers=16, eval_batches=1)
    result = export_run(ExportOptions(run=str(run), format="gguf", out=str(tmp_path / "gguf"), name="smol"))
    file = tmp_path / "gguf" / "smol-f16.gguf"
    assert result.warnings == []

    ours, _ = read_fields(file, full=lambda k: k.startswith("tokenizer."))
    original, _ = read_fields(smol_gguf_path(), full=lambda k: k.startswith("tokenizer."))
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token"):
        assert ours[key].value == original[key].value, key
    assert ours["tokenizer.ggml.eos_token_id"].value == ours["tokenizer.ggml.eot_token_id"].value == 2
    assert ours["tokenizer.chat_template"].value == (run / "chat_template.jinja").read_text()

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "gguf"), gguf_file=file.name)
    ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": "What is 110 millimeters in cm?"}],
                                             add_generation_prompt=True, tokenize=False), add_special_tokens=False)
    tuned = mlx_logits(run, ids)
    assert_adapter_matters(tuned, mlx_logits(run, ids, adapters=False))
    with _quiet_transformers(lambda stage, frac: None):
        model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "gguf"), gguf_file=file.name, dtype=torch.float32)
    with torch.no_grad():
        got = model(torch.tensor([ids])).logits[0].numpy()
    # f16 weights: measured 0.05 max on logits up to ~40 (the demo run)
    assert np.abs(got - tuned).max() < 0.15
    assert (got.argmax(-1) == tuned.argmax(-1)).mean() > 0.95


@pytest.mark.slow
def test_smollm2_adapters_cross_frameworks_on_the_same_fp32_weights(tmp_path):
    """MLX run -> PEFT adapter on transformers, and torch run -> mlx-lm adapter on MLX, on the embedded SmolLM2,
    each framework loading the very fp32 tensors of mlxsft's conversion of its GGUF (the MLX cache folder, a
    transformers-loadable llama checkpoint): the tuned logits agree as closely as the two bases alone do."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    import mlx.core as mx
    from mlx_lm.utils import load_adapters
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mlxsft.export.adapter_format import peft_to_mlx
    from mlxsft.models import load_mlx, mlx_model_path

    # one step, one validation batch: the conversion of the GGUF (~40 s here, once per session) is most of the time
    short = dict(iters=1, max_rows=4, batch_size=2, max_seq_len=64, learning_rate=1e-2, num_layers=2,
                 eval_batches=1)
    mlx_run = train_run("smollm2-135m-instruct", None, tmp_path / "mlx-run", **short)
    weights = mlx_model_path("smollm2-135m-instruct")  # what the MLX run's base loaded, fp32
    torch_run = train_run(str(weights), None, tmp_path / "torch-run", backend="torch", **short)
    export_run(ExportOptions(run=str(mlx_run), format="peft", out=str(tmp_path / "peft")))
    export_run(ExportOptions(run=str(torch_run), format="mlx-adapter", out=str(tmp_path / "mlx-adapter")))

    tok = AutoTokenizer.from_pretrained(str(weights))
    ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": "What is 110 millimeters in cm?"}],
                                             add_generation_prompt=True, tokenize=False), add_special_tokens=False)

    def on_torch(adapter=None) -> np.ndarray:
        model = AutoModelForCausalLM.from_pretrained(str(weights), dtype=torch.float32)
        if adapter is not None:
            model = PeftModel.from_pretrained(model, str(adapter))
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].numpy()

    def on_mlx(adapter=None) -> np.ndarray:
        model, _, _ = load_mlx(str(weights))
        if adapter is not None:
            load_adapters(model, str(adapter))
        model.eval()
        return np.array(model(mx.array([ids]))[0].astype(mx.float32))

    torch_base, mlx_base = on_torch(), on_mlx()
    floor = float(np.abs(torch_base - mlx_base).max())  # the frameworks' own fp32 difference, no adapter at all
    mlx_tuned, peft_tuned = on_mlx(mlx_run), on_torch(tmp_path / "peft")
    torch_tuned, mlx_of_torch = on_torch(torch_run), on_mlx(tmp_path / "mlx-adapter")
    assert_adapter_matters(mlx_tuned, mlx_base)
    assert_adapter_matters(torch_tuned, torch_base)
    to_peft, to_mlx = float(np.abs(peft_tuned - mlx_tuned).max()), float(np.abs(mlx_of_torch - torch_tuned).max())
    # what each adapter changes, in the framework it was exported to and in the one it trained in
    change_peft = float(np.abs((peft_tuned - torch_base) - (mlx_tuned - mlx_base)).max())
    change_mlx = float(np.abs((mlx_of_torch - mlx_base) - (torch_tuned - torch_base)).max())
    print(f"SmolLM2-135M fp32, {len(ids)} tokens, logits up to {np.abs(mlx_tuned).max():.1f}: bases alone "
          f"{floor:.2e}; MLX run -> PEFT {to_peft:.2e} (its change {change_peft:.2e}), torch run -> MLX "
          f"{to_mlx:.2e} (its change {change_mlx:.2e})")
    # measured 1.2e-4 for the bases alone (30 blocks of fp32 in two frameworks), 1.2e-4 for both adapters
    assert to_peft < floor + 1e-4 and to_mlx < floor + 1e-4, (floor, to_peft, to_mlx)
    assert change_peft < 1e-4 and change_mlx < 1e-4, (change_peft, change_mlx)

    # and MLX -> PEFT -> MLX gives back the real run's tensors bit for bit
    back, _ = peft_to_mlx(dict(mx.load(str(tmp_path / "peft" / "adapter_model.safetensors"))),
                          json.loads((tmp_path / "peft" / "adapter_config.json").read_text()))
    original = dict(mx.load(str(mlx_run / "adapters.safetensors")))
    assert sorted(back) == sorted(original)
    assert all(np.array_equal(np.array(back[k]), np.array(v)) for k, v in original.items())
