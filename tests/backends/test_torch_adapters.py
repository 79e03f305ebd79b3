"""Wrapping a model in peft's adapters tells the user nothing they cannot act on."""

from __future__ import annotations

import warnings

from mlxsft.config import LoraConfig


def test_adding_adapters_raises_no_future_warning_from_peft(tiny_llama_dir, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    import mlxsft.backends.torch.adapters as adapters

    def wrap(quiet: bool) -> list[str]:
        model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if quiet:
                adapters.make_trainable(model, LoraConfig(method="lora", rank=4))
            else:
                from peft import LoraConfig as PeftLoraConfig, get_peft_model

                get_peft_model(model, PeftLoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
        return [str(w.message) for w in seen if issubclass(w.category, FutureWarning)]

    assert any("is_gradient_checkpointing" in m for m in wrap(quiet=False))  # what peft alone prints
    assert wrap(quiet=True) == []
