"""The embedded SmolLM2-135M-Instruct, briefly tuned, exported to GGUF: its tokenizer metadata is the original
GGUF's, and transformers' GGUF loader gives the tuned model's logits within f16 rounding."""

from __future__ import annotations

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
                    max_seq_len=96, learning_rate=2e-3, num_layers=16)
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
