"""``mlxsft export`` through the command line, and bad input: one error line, a non-zero exit, and ``--out``
never created, half-written or clobbered."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlxsft.errors import ConfigError, MlxsftError, RunError
from mlxsft.export import ExportOptions, export_run
from tests.helpers import run_cli


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_cli_exports(mlx_llama_run, tmp_path):
    out = tmp_path / "exports" / "hf"
    r = run_cli("export", "--run", str(mlx_llama_run), "--format", "hf", "--out", str(out), "--dtype", "bfloat16")
    assert r.returncode == 0, r.stderr
    assert "bfloat16" in r.stdout and "<|im_end|>" in r.stdout
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    assert leftovers(out.parent) == []


@pytest.fixture(scope="module")
def bad_bases(tmp_path_factory, smol_tokenizer_dir) -> dict[str, Path]:
    """A llama of another width (the adapters cannot fit it) and a qwen3 (no GGUF writer for it)."""
    import torch
    import transformers as tf

    out = {}
    for name, cfg in (("narrow-llama", tf.LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64,
                                                       num_hidden_layers=2, num_attention_heads=2,
                                                       num_key_value_heads=1, tie_word_embeddings=True)),
                      ("qwen3", tf.Qwen3Config(vocab_size=49152, hidden_size=64, intermediate_size=128,
                                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                               head_dim=16, tie_word_embeddings=True))):
        folder = tmp_path_factory.mktemp(name)
        for f in smol_tokenizer_dir.iterdir():
            shutil.copy(f, folder / f.name)
        torch.manual_seed(0)
        tf.AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
        out[name] = folder
    return out


def test_bad_inputs_through_the_cli(mlx_llama_run, bad_bases, tmp_path):
    no_adapters = tmp_path / "no-adapters"
    no_adapters.mkdir()
    for f in ("config.yaml", "base_model.txt", "chat_template.jinja"):
        shutil.copy(mlx_llama_run / f, no_adapters / f)
    cases = [
        (["--run", str(no_adapters), "--format", "hf"], "no tuned weights to export"),
        (["--run", str(mlx_llama_run), "--format", "hf", "--model", str(bad_bases["narrow-llama"])],
         "do not fit the base model"),
        (["--run", str(mlx_llama_run), "--format", "gguf", "--model", str(bad_bases["qwen3"])],
         "GGUF export does not support architecture 'qwen3'"),
        (["--run", str(tmp_path / "missing"), "--format", "mlx"], "run folder not found"),
        (["--run", str(mlx_llama_run), "--format", "gguf", "--quantize", "4"], "--quantize applies to --format mlx"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / "outs" / f"o{i}"
        r = run_cli("export", *args, "--out", str(out))
        assert r.returncode != 0, args
        assert message in one_error_line(r.stderr), (message, r.stderr)
        assert not out.exists(), args
        assert not (tmp_path / "outs").exists() or leftovers(tmp_path / "outs") == []


def test_out_is_never_clobbered(mlx_llama_run, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="--out is not empty"):
        export_run(ExportOptions(run=str(mlx_llama_run), format="hf", out=str(out)))
    assert (out / "keep.txt").read_text() == "mine"
    for target in (mlx_llama_run, mlx_llama_run.parent):  # the run itself, or a folder holding it
        with pytest.raises(RunError, match="would contain"):
            export_run(ExportOptions(run=str(mlx_llama_run), format="hf", out=str(target), overwrite=True))
    assert (mlx_llama_run / "adapters.safetensors").is_file()
    with pytest.raises(RunError, match="replaces only an earlier mlxsft export"):
        export_run(ExportOptions(run=str(mlx_llama_run), format="hf", out=str(out), overwrite=True))
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="--dtype applies to --format mlx and hf"):
        export_run(ExportOptions(run=str(mlx_llama_run), format="gguf", out=str(tmp_path / "x"), dtype="float16"))


def test_a_failure_while_writing_leaves_nothing(mlx_llama_run, tmp_path, monkeypatch):
    import mlxsft.export.gguf_format as gguf_format

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(gguf_format, "write_gguf", broken)
    out = tmp_path / "new" / "gguf"
    with pytest.raises(OSError, match="disk full"):
        export_run(ExportOptions(run=str(mlx_llama_run), format="gguf", out=str(out)))
    assert not out.exists() and not out.parent.exists()  # not even the parent it had to create

    # --overwrite: the old export stays until the new one is complete
    old = tmp_path / "old"
    export_run(ExportOptions(run=str(mlx_llama_run), format="hf", out=str(old)))
    before = sorted(p.name for p in old.iterdir())
    with pytest.raises(OSError, match="disk full"):
        export_run(ExportOptions(run=str(mlx_llama_run), format="gguf", out=str(old), overwrite=True))
    assert sorted(p.name for p in old.iterdir()) == before and leftovers(tmp_path) == []
    monkeypatch.undo()
    export_run(ExportOptions(run=str(mlx_llama_run), format="gguf", out=str(old), overwrite=True, name="m"))
    assert sorted(p.name for p in old.iterdir()) == ["Modelfile", "README.md", "m-f16.gguf"]
    assert leftovers(tmp_path) == []


def test_best_and_checkpoint_folders(mlx_llama_run, tmp_path):
    from mlxsft.runs.read import RunFolder

    step = next((mlx_llama_run / "checkpoints").glob("step-*"))
    info = RunFolder.open(step)
    assert info.run_dir == mlx_llama_run and info.weights_dir == step and info.method == "lora"
    assert info.template == (mlx_llama_run / "chat_template.jinja").read_text()
    fake = tmp_path / "torch-run"
    (fake / "checkpoints" / "step-00000002").mkdir(parents=True)
    shutil.copy(mlx_llama_run / "config.yaml", fake / "config.yaml")
    (fake / "run_info.json").write_text('{"backend": "torch", "base_model": "x", "method": "lora"}')
    ckpt = fake / "checkpoints" / "step-00000002"
    for f in ("trainable.safetensors", "optimizer.pt", "state.json"):
        (ckpt / f).write_bytes(b"")
    with pytest.raises(MlxsftError, match="torch checkpoints are for resuming"):
        RunFolder.open(ckpt)
