"""``--format hf`` from MLX runs: transformers loads it with no missing weight and the adapter model's logits,
for LoRA, DoRA, full fine-tuning and QLoRA; the tokenizer, template and stop ids come along."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlxsft.export import ExportOptions, export_run
from tests.export.conftest import IDS, assert_adapter_matters, hf_logits, mlx_logits, train_run

pytest.importorskip("torch")


@pytest.mark.parametrize("over,atol", [(None, 1e-4), ({"method": "dora"}, 1e-4),
                                       ({"method": "full", "learning_rate": 1e-2}, 1e-4),
                                       ({"quantize": 4}, 1e-3)],
                         ids=["lora", "dora", "full", "qlora"])
def test_hf_export_has_the_adapter_models_logits(tiny_llama_dir, export_data, mlx_llama_run, tmp_path, over, atol):
    import torch
    from transformers import AutoModelForCausalLM

    run = mlx_llama_run if over is None else train_run(tiny_llama_dir, export_data, tmp_path / "run", **over)
    over = over or {}
    tuned = mlx_logits(run)
    assert_adapter_matters(tuned, mlx_logits(run, adapters=False))
    export_run(ExportOptions(run=str(run), format="hf", out=str(tmp_path / "hf")))
    model, info = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"), dtype=torch.float32,
                                                       output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    with torch.no_grad():
        np.testing.assert_allclose(model(torch.tensor([IDS])).logits[0].numpy(), tuned, atol=atol)
    if over.get("quantize"):  # a QLoRA base is de-quantized before fusing: plain float weights come out
        assert "quantization" not in json.loads((tmp_path / "hf" / "config.json").read_text())


def test_hf_export_carries_template_tokenizer_and_stop_ids(mlx_llama_run, tmp_path):
    from transformers import AutoTokenizer, GenerationConfig

    out = tmp_path / "hf"
    result = export_run(ExportOptions(run=str(mlx_llama_run), format="hf", out=str(out), dtype="float16"))
    template = (mlx_llama_run / "chat_template.jinja").read_text()
    assert (out / "chat_template.jinja").read_text() == template
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.chat_template == template
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    rendered = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert rendered.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    gen = GenerationConfig.from_pretrained(str(out))
    assert gen.eos_token_id == 2 and tok.convert_ids_to_tokens(2) == "<|im_end|>"
    assert result.stops.eot_text == "<|im_end|>" and result.stops.ids == [2]
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "np") as f:  # --dtype float16 reached the weights
        assert str(f.get_slice("model.embed_tokens.weight").get_dtype()) == "F16"
        assert "lm_head.weight" not in f.keys()  # tied: transformers re-ties it from the config
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "float16"
    assert sorted(result.files) == sorted(p.name for p in out.iterdir())
    assert {"README.md", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "chat_template.jinja"} <= set(result.files)


def test_end_of_turn_that_is_not_eos_becomes_a_stop_id(tiny_llama_dir, export_data, tmp_path):
    """The peers' 'never stops' bug: a template ending turns with a token other than EOS. Here the turn ends with
    <|endoftext|> (id 0) while EOS is <|im_end|> (id 2): the export must stop at both."""
    from transformers import GenerationConfig

    tpl = tmp_path / "eot.jinja"
    tpl.write_text("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
                   "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    run = train_run(tiny_llama_dir, export_data, tmp_path / "run", chat_template=str(tpl))
    result = export_run(ExportOptions(run=str(run), format="hf", out=str(tmp_path / "hf")))
    assert result.stops.eot_id == 0 and result.stops.eos_id == 2
    assert GenerationConfig.from_pretrained(str(tmp_path / "hf")).eos_token_id == [2, 0]
    assert hf_logits(tmp_path / "hf", IDS).shape == (len(IDS), 49152)
