"""Exports of a ``--backend torch`` run (PEFT adapters merged with ``merge_and_unload``): the transformers,
GGUF and MLX outputs all have the logits of the PEFT model the run trained."""

from __future__ import annotations

import numpy as np
import pytest

from mlxsft.export import ExportOptions, export_run
from tests.export.conftest import IDS, assert_adapter_matters, hf_logits, torch_logits

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


def test_torch_run_exports_to_all_three_formats(torch_llama_run, tmp_path):
    import mlx.core as mx
    from mlx_lm import load

    from mlxsft.runs.read import RunFolder
    from tests.export.test_gguf_export import gguf_model, logits_of

    assert RunFolder.open(torch_llama_run).backend == "torch"
    tuned = torch_logits(torch_llama_run)
    assert_adapter_matters(tuned, torch_logits(torch_llama_run, adapters=False))

    hf = export_run(ExportOptions(run=str(torch_llama_run), format="hf", out=str(tmp_path / "hf")))
    assert hf.run.backend == "torch" and hf.run.method == "lora"
    np.testing.assert_allclose(hf_logits(tmp_path / "hf"), tuned, atol=1e-4)

    gguf = export_run(ExportOptions(run=str(torch_llama_run), format="gguf", out=str(tmp_path / "gguf"),
                                    gguf_type="f32"))
    assert "Modelfile" in gguf.files
    np.testing.assert_allclose(logits_of(gguf_model(tmp_path / "gguf")), tuned, atol=1e-4)

    export_run(ExportOptions(run=str(torch_llama_run), format="mlx", out=str(tmp_path / "mlx")))
    model, tokenizer = load(str(tmp_path / "mlx"))
    np.testing.assert_allclose(np.array(model(mx.array([IDS]))[0]), tuned, atol=1e-3)
    assert 2 in tokenizer.eos_token_ids
    assert not (tmp_path / "mlx" / "mlxsft.json").exists()  # convert's provenance would name a deleted scratch folder


def test_torch_full_fine_tune_exports(tiny_llama_dir, export_data, tmp_path):
    from tests.export.conftest import train_run

    run = train_run(tiny_llama_dir, export_data, tmp_path / "run", backend="torch", method="full",
                    learning_rate=1e-2)
    import torch as t
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=t.float32)
    base = logits_of_model(model)
    model.load_state_dict(load_file(str(run / "trainable.safetensors")), strict=False)
    tuned = logits_of_model(model)
    assert_adapter_matters(tuned, base)
    result = export_run(ExportOptions(run=str(run), format="hf", out=str(tmp_path / "hf"), dtype="float32"))
    assert result.run.method == "full"
    np.testing.assert_allclose(hf_logits(tmp_path / "hf"), tuned, atol=1e-4)


def logits_of_model(model) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0].float().numpy()
