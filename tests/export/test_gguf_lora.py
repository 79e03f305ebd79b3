"""``mlxsft export --format gguf-lora``: llama.cpp's LoRA adapter format, read back with gguf's own reader
(names, ggml shapes against the base GGUF's tensors, alpha, general.type), the llama q/k permutation of B's
rows checked against a loop written from llama.cpp's rotary layout, DoRA refused, the CLI end to end, and
where llama-cpp-python is installed llama.cpp itself applying the adapter to the base GGUF.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlxsft.errors import ConfigError, RunError
from mlxsft.export import ExportOptions, export_run
from mlxsft.models.gguf_read import read_fields
from tests.export.conftest import IDS, assert_adapter_matters, mlx_logits, torch_logits
from tests.helpers import run_cli

MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def export(run: Path, out: Path, **kw):
    return export_run(ExportOptions(run=str(run), format="gguf-lora", out=str(out), **kw))


def reader(folder: Path):
    import gguf

    return gguf.GGUFReader(next(folder.glob("*-lora-*.gguf")))


def lora_tensors(folder: Path) -> dict[str, np.ndarray]:
    return {t.name: np.asarray(t.data) for t in reader(folder).tensors}


def write_base_gguf(hf_dir: Path, out: Path) -> Path:
    """The tiny base as mlxsft's --format gguf writes a model (f32), for llama.cpp to put the adapter on."""
    from transformers import AutoTokenizer

    from mlxsft.export.gguf_format import write_gguf
    from mlxsft.export.stops import find_stops

    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    write_gguf(hf_dir, out, gguf_type="f32", template=tok.chat_template, stops=find_stops(tok, tok.chat_template),
               name="base")
    return out


@pytest.fixture(scope="module")
def lora_runs(mlx_llama_run, mlx_gemma3_run, mlx_qwen2_run, torch_llama_run) -> dict[str, Path]:
    return {"llama": mlx_llama_run, "gemma3": mlx_gemma3_run, "qwen2": mlx_qwen2_run,
            "torch-llama": torch_llama_run}


@pytest.fixture(scope="module")
def exported(lora_runs, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf-lora")
    for name, run in lora_runs.items():
        export(run, root / name, name="tiny")
    return {name: root / name for name in lora_runs}


@pytest.fixture(scope="module")
def base_ggufs(lora_runs, tmp_path_factory) -> dict[str, Path]:
    from mlxsft.runs.read import RunFolder

    root = tmp_path_factory.mktemp("base-gguf")
    return {name: write_base_gguf(Path(RunFolder.open(run).base_model), root / f"{name}-base-f32.gguf")
            for name, run in lora_runs.items()}


@pytest.mark.parametrize("name,arch", [("llama", "llama"), ("gemma3", "gemma3"), ("qwen2", "qwen2"),
                                       ("torch-llama", "llama")])
def test_gguf_reader_reads_names_shapes_alpha_and_type(exported, base_ggufs, name, arch):
    import gguf

    r = reader(exported[name])
    assert r.get_field("general.type").contents() == "adapter"
    assert r.get_field("adapter.type").contents() == "lora"
    assert r.get_field("general.architecture").contents() == arch
    # the run's lora alpha 16 over rank 8: llama.cpp's alpha / r is the trained scale 2, not 16 (or 1/8)
    assert r.get_field("adapter.lora.alpha").contents() == pytest.approx(16.0)
    assert r.get_field(gguf.Keys.Adapter.LORA_ALPHA).types == [gguf.GGUFValueType.FLOAT32]
    names = {t.name for t in r.tensors}
    assert names == {f"blk.{i}.{m}.weight.lora_{ab}" for i in (0, 1) for m in MATRICES for ab in "ab"}
    assert {t.tensor_type.name for t in r.tensors} == {"F32"}
    # the base's tensor table through mlxsft's reader (tested against GGUFReader, seconds slower on 49k tokens)
    base = {t.name: t.shape for t in read_fields(base_ggufs[name])[1]}
    for t in r.tensors:  # llama.cpp's checks (src/llama-adapter.cpp), in ggml's ne order
        w = base[t.name.rsplit(".", 1)[0]]
        ne = tuple(int(d) for d in t.shape)
        if t.name.endswith("lora_a"):
            assert ne == (w[0], 8), (t.name, ne, w)  # ne[0] = the base's input width, ne[1] = the rank
        else:
            assert ne == (8, w[1]), (t.name, ne, w)  # ne[0] = the rank, ne[1] = the base's output rows


def rotary_layout(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's order of a q/k projection's output rows, written as a loop: within each head, transformers
    keeps the pairs' first halves then their second halves (rotate_half); llama.cpp interleaves them."""
    head_dim = rows.shape[0] // n_head
    out = np.empty_like(rows)
    for h in range(n_head):
        for j in range(head_dim // 2):
            out[h * head_dim + 2 * j] = rows[h * head_dim + j]
            out[h * head_dim + 2 * j + 1] = rows[h * head_dim + head_dim // 2 + j]
    return out


@pytest.mark.parametrize("name", ["llama", "qwen2", "torch-llama"])
def test_update_is_the_runs_own_in_llama_cpps_row_order(exported, lora_runs, name):
    """alpha / r * B A of the file is the run's trained update, q/k rows permuted for llama only."""
    import mlx.core as mx

    run = lora_runs[name]
    alpha = reader(exported[name]).get_field("adapter.lora.alpha").contents()
    got = lora_tensors(exported[name])
    if name.startswith("torch"):
        config = json.loads((run / "adapter_config.json").read_text())
        peft = {k: np.array(v) for k, v in mx.load(str(run / "adapter_model.safetensors")).items()}
        scale = config["lora_alpha"] / config["r"]

        def update(module: str) -> np.ndarray:  # PEFT: scaling * B @ A, (out, in)
            p = f"base_model.model.model.layers.0.{module}"
            return scale * peft[f"{p}.lora_B.weight"] @ peft[f"{p}.lora_A.weight"]
    else:
        scale = json.loads((run / "adapter_config.json").read_text())["lora_parameters"]["scale"]
        mlx = {k: np.array(v) for k, v in mx.load(str(run / "adapters.safetensors")).items()}

        def update(module: str) -> np.ndarray:  # mlx-lm: x @ (scale * lora_a @ lora_b), so W's delta is its T
            p = f"model.layers.0.{module}"
            return (scale * mlx[f"{p}.lora_a"] @ mlx[f"{p}.lora_b"]).T

    def from_file(gguf_name: str) -> np.ndarray:  # numpy views of ggml's tensors: lora_a (r, in), lora_b (out, r)
        return alpha / 8 * got[f"blk.0.{gguf_name}.weight.lora_b"] @ got[f"blk.0.{gguf_name}.weight.lora_a"]

    permute = name.endswith("llama")
    for module, gguf_name, n_head in (("self_attn.q_proj", "attn_q", 4), ("self_attn.k_proj", "attn_k", 2)):
        want = rotary_layout(update(module), n_head) if permute else update(module)
        np.testing.assert_allclose(from_file(gguf_name), want, rtol=1e-5, atol=1e-6)
        assert not np.allclose(want, update(module)) or not permute  # the permutation is not the identity
    for module, gguf_name in (("self_attn.v_proj", "attn_v"), ("mlp.down_proj", "ffn_down")):
        np.testing.assert_allclose(from_file(gguf_name), update(module), rtol=1e-5, atol=1e-6)


def test_f16_and_bad_types(lora_runs, tmp_path):
    export(lora_runs["llama"], tmp_path / "f16", gguf_type="f16")
    r = reader(tmp_path / "f16")
    assert {t.tensor_type.name for t in r.tensors} == {"F16"} and r.get_field("general.file_type").contents() == 1
    with pytest.raises(ConfigError, match="not one of f32, f16 for a GGUF LoRA adapter"):
        export(lora_runs["llama"], tmp_path / "q8", gguf_type="q8_0")
    with pytest.raises(ConfigError, match="--dtype applies to --format mlx and hf"):
        export(lora_runs["llama"], tmp_path / "dt", dtype="float16")
    assert not (tmp_path / "q8").exists() and not (tmp_path / "dt").exists()


def test_dora_is_refused_in_one_line(lora_runs, tmp_path):
    dora = tmp_path / "dora-run"  # what RunFolder reads of a DoRA run: its adapter config says so
    shutil.copytree(lora_runs["llama"], dora)
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps(dict(config, fine_tune_type="dora")))
    with pytest.raises(RunError, match="a DoRA run cannot be a GGUF LoRA adapter: llama.cpp has no DoRA"):
        export(dora, tmp_path / "out")
    r = run_cli("export", "--run", str(dora), "--format", "gguf-lora", "--out", str(tmp_path / "cli"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "llama.cpp has no DoRA" in lines[0] and "--format peft" in lines[0], r.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "cli").exists()


def test_cli_end_to_end_with_modelfile_and_card(lora_runs, tmp_path):
    out = tmp_path / "exports" / "lora"
    r = run_cli("export", "--run", str(lora_runs["llama"]), "--format", "gguf-lora", "--out", str(out))
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["Modelfile", "README.md", "chat_template.jinja", "mlx-llama-lora-f32.gguf"]
    assert "convert_hf_to_gguf.py" in r.stdout and "--lora" in r.stdout  # how to make FROM, how to run it
    modelfile = (out / "Modelfile").read_text()
    lines = modelfile.splitlines()
    from_line = next(ln for ln in lines if ln.startswith("FROM "))
    assert from_line == f"FROM ./{_base(lora_runs)}-f16.gguf"  # the GGUF llama.cpp's converter makes of it
    assert "ADAPTER ./mlx-llama-lora-f32.gguf" in lines
    assert lines.index("ADAPTER ./mlx-llama-lora-f32.gguf") == lines.index(from_line) + 1
    assert any(ln.startswith("# FROM must be a GGUF of the base model") for ln in lines)
    assert 'PARAMETER stop "<|im_end|>"' in lines and "<|im_start|>assistant" in modelfile
    card = (out / "README.md").read_text()
    assert "library_name: gguf" in card and "llama-cli -m" in card and "--lora mlx-llama-lora-f32.gguf" in card
    assert "FROM must be a GGUF of the base model" in card and "| adapter.lora.alpha | 16" in card
    for text in (modelfile, card):
        assert str(tmp_path) not in text and str(Path.home()) not in text  # no local path in what is published
    assert (out / "chat_template.jinja").read_text() == (lora_runs["llama"] / "chat_template.jinja").read_text()


def _base(lora_runs) -> str:
    from mlxsft.runs.read import RunFolder

    return Path(RunFolder.open(lora_runs["llama"]).base_model).name


def test_gguf_base_is_named_and_checked(lora_runs, base_ggufs, smol_tokenizer_dir, tmp_path):
    """A base that is a GGUF (an embedded model, a .gguf file): FROM names that file, and its tensors are
    checked as llama.cpp will check them, before anything is written."""
    import torch
    import transformers as tf

    from mlxsft.export.gguf_lora import base_layout
    from mlxsft.runs.read import RunFolder

    layout = base_layout(RunFolder.open(lora_runs["llama"], str(base_ggufs["llama"])))
    assert layout.gguf == base_ggufs["llama"] and layout.from_name == "llama-base-f32.gguf"
    assert (layout.n_head, layout.n_kv, layout.n_layers) == (4, 2, 2) and layout.arch.permute_qk
    assert "FROM must be the base model's own GGUF" in layout.note and str(tmp_path) not in layout.note

    narrow = tmp_path / "narrow-llama"  # a llama of another width: the adapter's sides cannot fit its tensors
    shutil.copytree(smol_tokenizer_dir, narrow)
    torch.manual_seed(0)
    tf.AutoModelForCausalLM.from_config(tf.LlamaConfig(
        vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, tie_word_embeddings=True)).save_pretrained(narrow)
    narrow_gguf = write_base_gguf(narrow, tmp_path / "narrow.gguf")
    with pytest.raises(RunError, match=r"blk\.\d\.\w+\.weight is \d+ x \d+ in the base GGUF") as err:
        export(lora_runs["llama"], tmp_path / "x", model=str(narrow_gguf))
    assert "\n" not in str(err.value) and "--model" in str(err.value)
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- llama.cpp itself
@pytest.mark.parametrize("name", ["llama", "qwen2", "gemma3", "torch-llama"])
def test_llama_cpp_applies_the_adapter(exported, base_ggufs, lora_runs, name):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (`make llama-cpp`)")

    def scores(lora: Path | None) -> np.ndarray:
        kw = {"lora_path": str(lora)} if lora else {}
        f32 = llama_cpp.GGML_TYPE_F32  # an f32 KV cache (the default f16 one rounds every key and value)
        llm = llama_cpp.Llama(model_path=str(base_ggufs[name]), n_ctx=64, logits_all=True, verbose=False,
                              type_k=f32, type_v=f32, **kw)
        llm.eval(IDS)
        return np.array(llm.scores[: len(IDS)])

    run = lora_runs[name]
    tuned = torch_logits(run) if name.startswith("torch") else mlx_logits(run)
    base = scores(None)
    got = scores(next(exported[name].glob("*-lora-f32.gguf")))
    assert_adapter_matters(got, base)
    diff = float(np.abs(got - tuned).max())
    untuned = torch_logits(run, adapters=False) if name.startswith("torch") else mlx_logits(run, adapters=False)
    floor = float(np.abs(base - untuned).max())
    effect = float(np.abs((got - base) - (tuned - untuned)).max())
    print(f"{name}: llama.cpp base + adapter vs the run's adapter model: max |logit diff| {diff:.2e} "
          f"(the bases alone: {floor:.2e}; the adapter's change: {effect:.2e})")
    # measured (f32 KV cache): llama 1.4e-5, qwen2 1.2e-5, torch llama 2.1e-5; gemma3 1.4e-3, where llama.cpp's
    # and MLX's Gemma 3 already differ by 1.8e-3 on the base alone (ggml's CPU GELU reads an f16 table)
    assert diff < floor + 1e-4, (diff, floor)
    if floor < 1e-4:  # where the bases agree, the adapter's own change agrees too (llama 1.9e-5)
        assert effect < 1e-4, effect
