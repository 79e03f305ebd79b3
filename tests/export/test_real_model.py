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


@pytest.fixture(scope="module")
def smol(tmp_path_factory) -> dict:
    """An MLX run on the embedded SmolLM2 and a torch run on mlxsft's fp32 conversion of it (the MLX cache
    folder, a transformers-loadable llama checkpoint): the very tensors the MLX run's base loaded."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from transformers import AutoTokenizer

    from mlxsft.models import mlx_model_path

    root = tmp_path_factory.mktemp("smol-adapters")
    # one step, one validation batch: the conversion of the GGUF (~40 s here, once per session) is most of the time
    short = dict(iters=1, max_rows=4, batch_size=2, max_seq_len=64, learning_rate=1e-2, num_layers=2,
                 eval_batches=1)
    mlx_run = train_run("smollm2-135m-instruct", None, root / "mlx-run", **short)
    weights = mlx_model_path("smollm2-135m-instruct")  # what the MLX run's base loaded, fp32
    torch_run = train_run(str(weights), None, root / "torch-run", backend="torch", **short)
    tok = AutoTokenizer.from_pretrained(str(weights))
    ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": "What is 110 millimeters in cm?"}],
                                             add_generation_prompt=True, tokenize=False), add_special_tokens=False)
    return {"mlx_run": mlx_run, "torch_run": torch_run, "weights": weights, "tokenizer": tok, "ids": ids}


@pytest.mark.slow
def test_smollm2_adapters_cross_frameworks_on_the_same_fp32_weights(smol, tmp_path):
    """MLX run -> PEFT adapter on transformers, and torch run -> mlx-lm adapter on MLX, each framework loading
    the same fp32 tensors: the tuned logits agree as closely as the two bases alone do."""
    import mlx.core as mx
    import torch
    from mlx_lm.utils import load_adapters
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from mlxsft.export.adapter_format import peft_to_mlx
    from mlxsft.models import load_mlx

    mlx_run, torch_run, weights, ids = smol["mlx_run"], smol["torch_run"], smol["weights"], smol["ids"]
    export_run(ExportOptions(run=str(mlx_run), format="peft", out=str(tmp_path / "peft")))
    export_run(ExportOptions(run=str(torch_run), format="mlx-adapter", out=str(tmp_path / "mlx-adapter")))

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


@pytest.mark.slow
def test_smollm2_gguf_lora_in_llama_cpp(smol, tmp_path):
    """The MLX run as a GGUF LoRA adapter: its Modelfile's FROM names the embedded GGUF; llama.cpp applies it to
    an f32 GGUF of the same fp32 weights (mlxsft's GGUF writer) within 1e-4 of what the bases alone differ by,
    and to the original Q4_1 file with the same greedy tokens but where Q4_1 rounding dominates."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (`make llama-cpp`)")
    from mlxsft.export.gguf_format import write_gguf
    from mlxsft.export.stops import find_stops

    run, ids, tok = smol["mlx_run"], smol["ids"], smol["tokenizer"]
    result = export_run(ExportOptions(run=str(run), format="gguf-lora", out=str(tmp_path / "lora"), name="smol"))
    assert result.base_gguf == smol_gguf_path() and result.base_from == smol_gguf_path().name
    lines = (tmp_path / "lora" / "Modelfile").read_text().splitlines()
    assert f"FROM ./{smol_gguf_path().name}" in lines and "ADAPTER ./smol-lora-f32.gguf" in lines
    f32_base = tmp_path / "smol-f32.gguf"
    write_gguf(smol["weights"], f32_base, gguf_type="f32", template=tok.chat_template,
               stops=find_stops(tok, tok.chat_template), name="base", source_gguf=smol_gguf_path())

    def scores(base, lora=None) -> np.ndarray:
        f32 = llama_cpp.GGML_TYPE_F32  # f32 KV cache: the default f16 one rounds every key and value
        llm = llama_cpp.Llama(model_path=str(base), n_ctx=128, logits_all=True, verbose=False, type_k=f32,
                              type_v=f32, **({"lora_path": str(lora)} if lora else {}))
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])

    adapter = tmp_path / "lora" / "smol-lora-f32.gguf"
    tuned, untuned = mlx_logits(run, ids), mlx_logits(run, ids, adapters=False)
    assert_adapter_matters(tuned, untuned)
    floor = float(np.abs(scores(f32_base) - untuned).max())
    diff = float(np.abs(scores(f32_base, adapter) - tuned).max())
    q4 = scores(smol_gguf_path(), adapter)
    q4_diff, same = float(np.abs(q4 - tuned).max()), float((q4.argmax(-1) == tuned.argmax(-1)).mean())
    print(f"llama.cpp + smol-lora-f32.gguf vs the MLX adapter model, {len(ids)} tokens: f32 base {diff:.2e} (bases "
          f"alone {floor:.2e}); original Q4_1 base {q4_diff:.2f}, same argmax at {same:.0%} of positions")
    # measured: f32 base 1.03e-4 (bases alone 1.03e-4); Q4_1 base 2.79, 38 of 40 argmaxes the same
    assert diff < floor + 1e-4, (diff, floor)
    assert same >= 0.9, same
