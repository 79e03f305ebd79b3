"""Write a Hugging Face folder (float32 safetensors + config + tokenizer) as one GGUF file, with gguf-py.

    check_gguf_config(config, where)                     # ModelError for what GGUF cannot express, before work
    write_gguf(hf_dir, Path("out/model-f16.gguf"), gguf_type="f16", template=..., stops=..., name="my-run")

Follows llama.cpp's ``convert_hf_to_gguf.py`` for the architectures in ``ARCHS``:
- tensor names through gguf's ``TensorNameMap``; a tied ``lm_head`` is not written (llama.cpp reuses
  ``token_embd``);
- llama: the q/k rows are permuted into llama.cpp's rotary layout (``LlamaModel.permute``); RoPE scaling
  ``linear``, and ``llama3`` as a ``rope_freqs`` tensor;
- gemma3: every ``*norm.weight`` is stored +1 (Gemma's RMSNorm multiplies by ``1 + w``; llama.cpp by ``w``);
  llama.cpp fixes the sliding-window pattern (every 6th layer global), the local RoPE base (10000) and the
  attention scale (``head_dim ** -0.5``), so a config that differs is refused instead of silently changed;
- qwen2: as llama, without the permutation, with the q/k/v biases.
1-D tensors (norms, biases) stay float32 as in llama.cpp; matrices are f16, or q8_0 (gguf's numpy Q8_0) where
the row length is a multiple of 32 (else f16), or f32. The tokenizer metadata comes from ``gguf_vocab.py``;
the chat template and the EOS / end-of-turn ids are the run's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from mlxsft.errors import ModelError
from mlxsft.export.stops import Stops

GGUF_TYPES = ("f16", "q8_0", "f32")


@dataclass(frozen=True)
class Arch:
    gguf_name: str  # gguf.MODEL_ARCH_NAMES value, e.g. "llama"
    permute_qk: bool = False  # llama's rotary layout
    norm_shift: float = 0.0  # added to every *norm.weight (Gemma)
    check: Callable[[dict, str], None] = lambda config, where: None
    params: Callable[[Any, dict], None] = lambda writer, config: None


def _rope(config: dict[str, Any], layer_type: str = "full_attention") -> dict[str, Any]:
    """RoPE settings whichever way the config spells them (transformers 4 flat keys or 5 ``rope_parameters``)."""
    params = config.get("rope_parameters")
    if isinstance(params, dict) and layer_type in params:
        params = params[layer_type]
    out = dict(params) if isinstance(params, dict) else {}
    if "rope_theta" not in out and config.get("rope_theta") is not None:
        out["rope_theta"] = config["rope_theta"]
    scaling = config.get("rope_scaling")
    if isinstance(scaling, dict) and _rope_type(out) == "default":
        out.update(scaling)
    return out


def _rope_type(rope: dict[str, Any]) -> str:
    return str(rope.get("rope_type", rope.get("type", "default")) or "default")


def _head_dim(config: dict[str, Any]) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def _common_params(w: Any, c: dict[str, Any]) -> None:
    w.add_vocab_size(c["vocab_size"])
    w.add_context_length(c.get("max_position_embeddings", 4096))
    w.add_embedding_length(c["hidden_size"])
    w.add_block_count(c["num_hidden_layers"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c.get("num_key_value_heads", c["num_attention_heads"]))
    w.add_layer_norm_rms_eps(c.get("rms_norm_eps", 1e-6))
    rope = _rope(c)
    w.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    if _rope_type(rope) == "linear":
        import gguf

        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(rope["factor"]))


def _check_rope(c: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
    kind = _rope_type(_rope(c))
    if kind not in allowed:
        raise ModelError(f"{where}: RoPE scaling '{kind}' is not supported for GGUF export "
                         f"(supported: {', '.join(allowed)})")


def _llama_check(c: dict[str, Any], where: str) -> None:
    _check_rope(c, where, ("default", "linear", "llama3"))
    if c.get("hidden_act", "silu") != "silu":
        raise ModelError(f"{where}: hidden_act '{c.get('hidden_act')}' is not llama's silu")


def _llama_params(w: Any, c: dict[str, Any]) -> None:
    _common_params(w, c)
    head_dim = _head_dim(c)
    w.add_rope_dimension_count(head_dim)
    if head_dim != c["hidden_size"] // c["num_attention_heads"]:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)


def _qwen2_check(c: dict[str, Any], where: str) -> None:
    _check_rope(c, where, ("default", "linear"))


def _gemma3_check(c: dict[str, Any], where: str) -> None:
    head_dim = _head_dim(c)
    if c.get("query_pre_attn_scalar", head_dim) != head_dim:
        raise ModelError(f"{where}: query_pre_attn_scalar {c.get('query_pre_attn_scalar')} != head_dim {head_dim}; "
                         "llama.cpp's Gemma 3 scales attention by head_dim")
    local = _rope(c, "sliding_attention")
    local_theta = c.get("rope_local_base_freq", local.get("rope_theta", 10000.0))
    if float(local_theta) != 10000.0:
        raise ModelError(f"{where}: local RoPE base {local_theta} is not the 10000 llama.cpp's Gemma 3 uses")
    layer_types = c.get("layer_types")
    n = c["num_hidden_layers"]
    expected = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)]
    if layer_types is not None and list(layer_types) != expected:
        raise ModelError(f"{where}: sliding/global layer pattern differs from Gemma 3's every-6th-layer one")
    for key in ("final_logit_softcapping", "attn_logit_softcapping"):
        if c.get(key) is not None:
            raise ModelError(f"{where}: {key} is set; llama.cpp's Gemma 3 has none")
    _check_rope(c, where, ("default", "linear"))


def _gemma3_params(w: Any, c: dict[str, Any]) -> None:
    _common_params(w, c)
    head_dim = _head_dim(c)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_sliding_window(c["sliding_window"])


ARCHS: dict[str, Arch] = {
    "llama": Arch("llama", permute_qk=True, check=_llama_check, params=_llama_params),
    "qwen2": Arch("qwen2", check=_qwen2_check, params=_common_params),
    "gemma3_text": Arch("gemma3", norm_shift=1.0, check=_gemma3_check, params=_gemma3_params),
}
# the architecture name inside a GGUF file -> transformers' model_type
GGUF_TO_MODEL_TYPE = {a.gguf_name: t for t, a in ARCHS.items()}


def check_gguf_config(config: dict[str, Any], where: str) -> Arch:
    """The Arch for this config, or a one-line ModelError saying why GGUF export cannot do it."""
    model_type = config.get("model_type")
    arch = ARCHS.get(str(model_type))
    if arch is None:
        raise ModelError(f"{where}: GGUF export does not support architecture '{model_type}' "
                         f"(supported: {', '.join(sorted(ARCHS))}); export --format hf or mlx instead")
    arch.check(config, where)
    return arch


def write_gguf(hf_dir: Path, out_file: Path, *, gguf_type: str, template: str, stops: Stops, name: str,
               source_gguf: Optional[Path] = None, progress: Optional[Callable[[str, float], None]] = None,
               ) -> list[str]:
    """Write ``out_file``; returns warnings for the user (e.g. an unknown BPE pre-tokenizer)."""
    import gguf

    from mlxsft.export.gguf_vocab import add_vocab

    report = progress or (lambda stage, frac: None)
    if gguf_type not in GGUF_TYPES:
        raise ModelError(f"gguf type '{gguf_type}' is not one of {', '.join(GGUF_TYPES)}")
    config = json.loads((hf_dir / "config.json").read_text())
    arch = check_gguf_config(config, str(hf_dir))
    writer = gguf.GGUFWriter(path=None, arch=arch.gguf_name)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                          "f32": gguf.LlamaFileType.ALL_F32}[gguf_type])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    vocab_rows = _add_tensors(writer, hf_dir, config, arch, gguf_type, report)
    config = dict(config, vocab_size=vocab_rows)  # the embedding's rows are what llama.cpp checks against
    arch.params(writer, config)
    warnings = add_vocab(writer, hf_dir, vocab_rows, source_gguf)
    if stops.eos_id is not None:
        writer.add_eos_token_id(stops.eos_id)
    if stops.eot_id is not None:
        writer.add_eot_token_id(stops.eot_id)
    writer.add_chat_template(template)

    report("writing the GGUF file", 0.9)
    writer.write_header_to_file(path=out_file)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    return warnings


def _add_tensors(writer: Any, hf_dir: Path, config: dict[str, Any], arch: Arch, gguf_type: str,
                 report: Callable[[str, float], None]) -> int:
    import gguf
    from safetensors import safe_open

    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_head)
    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.gguf_name.upper()), config["num_hidden_layers"])
    tied = "lm_head.weight" not in _all_keys(hf_dir) or config.get("tie_word_embeddings", False)
    files = sorted(hf_dir.glob("*.safetensors"))
    vocab_rows = 0
    done, total = 0, sum(len(_keys(f)) for f in files)
    for file in files:
        with safe_open(str(file), "np") as f:
            for key in f.keys():
                done += 1
                if key.endswith("rotary_emb.inv_freq") or (key == "lm_head.weight" and tied):
                    continue
                new_name = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if new_name is None:
                    raise ModelError(f"{file}: tensor '{key}' has no GGUF name for {arch.gguf_name}")
                data = np.asarray(f.get_tensor(key), dtype=np.float32)
                if key == "model.embed_tokens.weight":
                    vocab_rows = data.shape[0]
                data = rotary_rows(arch, key.rsplit(".", 1)[0], data, n_head, n_kv)
                if arch.norm_shift and key.endswith("norm.weight"):
                    data = data + np.float32(arch.norm_shift)
                data, qtype = _encode(data, gguf_type)
                writer.add_tensor(new_name, data, raw_dtype=qtype)
                if done % 16 == 0:
                    report("converting tensors", 0.1 + 0.8 * done / max(total, 1))
    if arch.gguf_name == "llama" and _rope_type(_rope(config)) == "llama3":
        writer.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", _llama3_rope_factors(config))
    if not vocab_rows:
        raise ModelError(f"{hf_dir}: no model.embed_tokens.weight tensor")
    return vocab_rows


def rotary_rows(arch: Arch, module: str, rows: np.ndarray, n_head: int, n_kv: int) -> np.ndarray:
    """``rows``: the output rows of ``module`` (a weight, a bias, or a LoRA B, which is what produces them), in
    llama.cpp's rotary layout: permuted for a llama q_proj / k_proj, as they are otherwise."""
    if arch.permute_qk and module.endswith("q_proj"):
        return _permute(rows, n_head, n_head)
    if arch.permute_qk and module.endswith("k_proj"):
        return _permute(rows, n_head, n_kv)
    return rows


def _permute(w: np.ndarray, n_head: int, n_head_kv: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: HF's rotate-half layout -> interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


def _encode(data: np.ndarray, gguf_type: str) -> tuple[np.ndarray, Any]:
    import gguf

    Q = gguf.GGMLQuantizationType
    if data.ndim <= 1 or gguf_type == "f32":
        return data, Q.F32
    if gguf_type == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0] == 0:
        return gguf.quants.quantize(data, Q.Q8_0), Q.Q8_0
    return data.astype(np.float16), Q.F16


def _llama3_rope_factors(c: dict[str, Any]) -> np.ndarray:
    """llama.cpp LlamaModel.generate_extra_tensors: the per-frequency factors of Llama 3's RoPE scaling."""
    rope = _rope(c)
    base = float(rope.get("rope_theta", 10000.0))
    dim = _head_dim(c)
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_len = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_len / low, old_len / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_len / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _keys(file: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(file), "np") as f:
        return list(f.keys())


def _all_keys(hf_dir: Path) -> set[str]:
    return {k for f in hf_dir.glob("*.safetensors") for k in _keys(f)}
