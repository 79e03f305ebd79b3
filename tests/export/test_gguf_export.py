"""``--format gguf`` for tiny llama and gemma3 runs: read back with gguf's reader (metadata, tensor types) and
loaded with transformers' GGUF loader, whose logits must be the adapter model's -- exactly in f32, and in
f16 / q8_0 exactly those of the same weights rounded to f16 / q8_0 (the quantisation tolerance, measured
rather than guessed). Plus the Ollama Modelfile beside the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlxsft.export import ExportOptions, export_run
from mlxsft.models.gguf_read import read_gguf
from tests.export.conftest import IDS, assert_adapter_matters, mlx_logits

torch = pytest.importorskip("torch")

# transformers' GGUF loader does not read query_pre_attn_scalar; llama.cpp derives it from head_dim (16 in
# the tiny gemma3, 256 in real Gemma 3 270M, where the loader's default 256 is right)
GGUF_LOAD = {"llama": {}, "qwen2": {}, "gemma3": {"query_pre_attn_scalar": 16}}


def gguf_model(folder: Path, **config: object):
    from transformers import AutoModelForCausalLM

    from mlxsft.models.from_gguf import _quiet_transformers

    file = next(folder.glob("*.gguf"))
    with _quiet_transformers(lambda stage, frac: None):  # one parse of the file instead of three (49k tokens)
        return AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=file.name, dtype=torch.float32, **config)


def logits_of(model, ids=IDS) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def rounded_reference(hf_folder: Path, gguf_type: str, ids=IDS) -> np.ndarray:
    """The fused model with every matrix rounded as the GGUF stores it (f16, or gguf's own Q8_0 round trip)."""
    import gguf
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(hf_folder), dtype=torch.float32)
    Q = gguf.GGMLQuantizationType
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.ndim != 2:
                continue  # norms stay f32
            w = p.numpy()
            if gguf_type == "f16":
                w = w.astype(np.float16).astype(np.float32)
            else:
                w = gguf.quants.dequantize(gguf.quants.quantize(w, Q.Q8_0), Q.Q8_0)
            p.copy_(torch.from_numpy(np.ascontiguousarray(w)))
    return logits_of(model, ids)


class Exports:
    """Each (arch, format) exported once per module, the adapter model's logits computed once."""

    def __init__(self, runs: dict[str, Path], root: Path):
        self.runs, self.root, self.results, self.logits = runs, root, {}, {}

    def __call__(self, arch: str, kind: str) -> Path:
        """kind: "hf", or a GGUF type (f32, f16, q8_0)."""
        out = self.root / f"{arch}-{kind}"
        if (arch, kind) not in self.results:
            opts = dict(format="hf") if kind == "hf" else dict(format="gguf", gguf_type=kind)
            self.results[arch, kind] = export_run(ExportOptions(run=str(self.runs[arch]), out=str(out), name="tiny",
                                                                **opts))
        return out

    def adapter_logits(self, arch: str, adapters: bool = True) -> np.ndarray:
        if (arch, adapters) not in self.logits:
            self.logits[arch, adapters] = mlx_logits(self.runs[arch], adapters=adapters)
        return self.logits[arch, adapters]


@pytest.fixture(scope="module")
def exports(mlx_llama_run, mlx_gemma3_run, mlx_qwen2_run, tmp_path_factory) -> Exports:
    return Exports({"llama": mlx_llama_run, "gemma3": mlx_gemma3_run, "qwen2": mlx_qwen2_run},
                   tmp_path_factory.mktemp("gguf-exports"))


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
def test_gguf_f32_has_the_adapter_models_logits(exports, arch):
    tuned = exports.adapter_logits(arch)
    assert_adapter_matters(tuned, exports.adapter_logits(arch, adapters=False))
    np.testing.assert_allclose(logits_of(gguf_model(exports(arch, "f32"), **GGUF_LOAD[arch])), tuned, atol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("gguf_type", ["f16", "q8_0"])
def test_gguf_f16_and_q8_0_differ_from_the_adapter_model_only_by_rounding(exports, arch, gguf_type):
    folder = exports(arch, gguf_type)
    summary = read_gguf(folder / f"tiny-{gguf_type}.gguf")
    qtype = {"f16": "F16", "q8_0": "Q8_0"}[gguf_type]
    assert summary.tensor_types[qtype] == 2 * 7 + 1  # 7 matrices per block, 2 blocks, the embedding
    assert set(summary.tensor_types) == {qtype, "F32"}  # norms stay f32
    got = logits_of(gguf_model(folder, **GGUF_LOAD[arch]))
    np.testing.assert_allclose(got, rounded_reference(exports(arch, "hf"), gguf_type), atol=1e-3)
    tuned = exports.adapter_logits(arch)
    # the rounding itself: visible, and small next to what the adapter changed
    assert 0 < np.abs(got - tuned).max() < 0.5 * np.abs(tuned - exports.adapter_logits(arch, adapters=False)).max()


@pytest.mark.parametrize("arch,gguf_arch", [("llama", "llama"), ("gemma3", "gemma3")])
def test_gguf_metadata_reads_back(exports, arch, gguf_arch):
    import gguf
    from transformers import AutoTokenizer

    run = exports.runs[arch]
    folder = exports(arch, "f16")
    result = exports.results[arch, "f16"]
    file = folder / "tiny-f16.gguf"
    assert sorted(result.files) == ["Modelfile", "README.md", "tiny-f16.gguf"]
    summary = read_gguf(file)
    template = (run / "chat_template.jinja").read_text()
    assert summary.architecture == gguf_arch
    assert summary.chat_template == template
    assert summary.eos_id == 2 and summary.eot_id == 2  # <|im_end|> ends the turn and is EOS
    assert summary.tokenizer_model == "gpt2" and summary.vocab_size == 49152
    reader = gguf.GGUFReader(file)
    assert reader.get_field("tokenizer.ggml.pre").contents() == "smollm"  # llama.cpp's name for this tokenizer
    assert len(reader.get_field("tokenizer.ggml.merges").data) > 40000
    # our fast reader (the export's read-back) says what gguf's own reader says, field by field
    from mlxsft.models.gguf_read import read_fields

    fields, tensors = read_fields(file, full=lambda key: True)
    assert [(t.name, t.type, t.shape, t.offset, t.nbytes) for t in tensors] == [
        (t.name, t.tensor_type.name, tuple(int(d) for d in t.shape), t.data_offset, int(t.n_bytes))
        for t in reader.tensors]
    for key, field in reader.fields.items():
        if not key.startswith("GGUF."):
            mine = fields[key].value
            mine = [m.decode() for m in mine] if isinstance(mine, list) and isinstance(mine[0], bytes) else mine
            assert mine == pytest.approx(field.contents()) if isinstance(mine, float) else mine == field.contents(), key
    names = {t.name for t in reader.tensors}
    assert "token_embd.weight" in names and "output.weight" not in names  # tied embeddings
    if arch == "llama":  # (both tiny models share SmolLM2's tokenizer: once is enough)
        # the tokenizer transformers rebuilds from the GGUF encodes as the run's tokenizer does
        hf_tok = AutoTokenizer.from_pretrained(result.run.base_model)  # the tiny model's folder
        gguf_tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=file.name)
        msgs = [{"role": "user", "content": "Ünïcödé 🚀 and 12+30?"}]
        kw = dict(chat_template=template, add_generation_prompt=True, tokenize=False)
        assert gguf_tok.apply_chat_template(msgs, **kw) == hf_tok.apply_chat_template(msgs, **kw)
        text = "Hello world! What's 12+30?\n  Ünïcödé 🚀 <|im_end|>"
        assert gguf_tok.encode(text, add_special_tokens=False) == hf_tok.encode(text, add_special_tokens=False)


def test_gguf_tensor_conventions(exports):
    """Gemma norms are stored +1 and llama's q/k rows are permuted, as llama.cpp expects."""
    import gguf
    from safetensors.numpy import load_file

    from mlxsft.export.gguf_format import _permute

    for arch in ("gemma3", "llama"):
        hf = load_file(str(exports(arch, "hf") / "model.safetensors"))
        tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(exports(arch, "f32") / "tiny-f32.gguf").tensors}
        if arch == "gemma3":
            for gguf_name, hf_name in (("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"),
                                       ("blk.1.attn_q_norm.weight", "model.layers.1.self_attn.q_norm.weight"),
                                       ("output_norm.weight", "model.norm.weight")):
                np.testing.assert_array_equal(tensors[gguf_name], hf[hf_name] + 1)
        else:
            q = hf["model.layers.0.self_attn.q_proj.weight"]
            k = hf["model.layers.0.self_attn.k_proj.weight"]
            np.testing.assert_array_equal(tensors["blk.0.attn_q.weight"], _permute(q, 4, 4))
            np.testing.assert_array_equal(tensors["blk.0.attn_k.weight"], _permute(k, 4, 2))
            assert not np.array_equal(tensors["blk.0.attn_q.weight"], q)
            np.testing.assert_array_equal(tensors["blk.0.attn_norm.weight"], hf["model.layers.0.input_layernorm.weight"])


def test_modelfile_beside_the_gguf(exports):
    text = (exports("llama", "q8_0") / "Modelfile").read_text()
    lines = text.splitlines()
    assert "FROM ./tiny-q8_0.gguf" in lines
    assert 'PARAMETER stop "<|im_end|>"' in lines
    template = text[text.index('TEMPLATE """'):]
    template = template[: template.index('"""', 12) + 3]
    assert "<|im_start|>user\n{{ .Content }}<|im_end|>\n" in template and "{{-" not in template
    # SmolLM2's template adds this system message when a chat has none; Ollama gets it as SYSTEM
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in lines


def test_llama_cpp_runs_the_export(exports):
    """Only where llama-cpp-python is installed (not a dependency: a long native build)."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (`make llama-cpp`)")
    f32 = llama_cpp.GGML_TYPE_F32  # an f32 KV cache: the default f16 one rounds every key and value (0.016 here)
    llm = llama_cpp.Llama(model_path=str(exports("llama", "f32") / "tiny-f32.gguf"), n_ctx=64, logits_all=True,
                          verbose=False, type_k=f32, type_v=f32)
    llm.eval(IDS)
    got = np.array(llm.scores[: len(IDS)])
    diff = np.abs(got - exports.adapter_logits("llama")).max()
    print(f"llama.cpp on the f32 GGUF vs the adapter model: max |logit diff| {diff:.2e}")
    assert diff < 1e-4, diff


def test_configs_gguf_cannot_express_are_refused():
    from mlxsft.errors import ModelError
    from mlxsft.export.gguf_format import check_gguf_config

    llama = dict(model_type="llama", hidden_size=64, num_attention_heads=4, num_hidden_layers=2)
    gemma = dict(model_type="gemma3_text", hidden_size=64, num_attention_heads=4, num_hidden_layers=6, head_dim=16,
                 query_pre_attn_scalar=16, layer_types=["sliding_attention"] * 5 + ["full_attention"])
    assert check_gguf_config(llama, "m").gguf_name == "llama"
    assert check_gguf_config(gemma, "m").gguf_name == "gemma3"
    bad = [
        (dict(llama, model_type="qwen3"), "does not support architecture 'qwen3'"),
        (dict(llama, rope_scaling={"rope_type": "yarn", "factor": 4.0}), "RoPE scaling 'yarn'"),
        (dict(gemma, query_pre_attn_scalar=256), "query_pre_attn_scalar 256 != head_dim 16"),
        (dict(gemma, layer_types=["full_attention"] * 6), "layer pattern differs"),
        (dict(gemma, rope_local_base_freq=20000.0), "local RoPE base 20000.0"),
        (dict(gemma, final_logit_softcapping=30.0), "final_logit_softcapping is set"),
    ]
    for config, message in bad:
        with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
            check_gguf_config(config, "m")
