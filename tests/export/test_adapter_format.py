"""``mlxsft export --format peft / mlx-adapter``: the adapters alone, not fused, for the other framework.

Each tiny run trains 2 steps at a high learning rate, so its adapters move the logits by whole units; the
exported adapter on the same base must then give the logits of the run's own adapter model (fp32, 1e-4).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlxsft.errors import ConfigError, RunError
from mlxsft.export import ExportOptions, export_run
from tests.export.conftest import IDS
from tests.helpers import make_cfg

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


def train(model_dir: Path, data: Path, out: Path, trainer: str, **over) -> Path:
    from mlxsft.train import run_training

    run_training(make_cfg(model_dir, data, out, trainer=trainer, backend=trainer, iters=2, learning_rate=3e-2,
                          **over))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama_dir, data_dir) -> dict[str, Path]:
    """MLX LoRA (every block), MLX DoRA (the last block only), torch LoRA and torch DoRA (the last block)."""
    root = tmp_path_factory.mktemp("adapter-runs")
    return {"mlx-lora": train(tiny_llama_dir, data_dir, root / "mlx-lora", "mlx"),
            "mlx-dora": train(tiny_llama_dir, data_dir, root / "mlx-dora", "mlx", method="dora", num_layers=1),
            "torch-lora": train(tiny_llama_dir, data_dir, root / "torch-lora", "torch"),
            "torch-dora": train(tiny_llama_dir, data_dir, root / "torch-dora", "torch", method="dora",
                                num_layers=1)}


def mlx_adapter_logits(base: Path, adapter: Path | None, fine_tune_type: str = "lora") -> np.ndarray:
    """The model mlxsft chat/eval use: the base with the mlx-lm adapter loaded (not fused)."""
    import mlx.core as mx

    from mlxsft.backends import registry

    _, views = registry.part("mlx", "generate").load_views(str(base), adapter, fine_tune_type=fine_tune_type)
    model = views["tuned" if adapter else "base"].model
    return np.array(model(mx.array([IDS]))[0].astype(mx.float32))


def peft_logits(base: Path, adapter: Path | None) -> np.ndarray:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0].float().numpy()


def export(run: Path, fmt: str, out: Path, **kw):
    return export_run(ExportOptions(run=str(run), format=fmt, out=str(out), **kw))


def tensors(path: Path) -> dict[str, np.ndarray]:
    import mlx.core as mx

    return {k: np.array(v) for k, v in mx.load(str(path)).items()}


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


@pytest.mark.parametrize("name", ["mlx-lora", "mlx-dora"])
def test_mlx_run_to_peft_has_the_runs_logits(runs, name, tiny_llama_dir, tmp_path):
    run, method = runs[name], name.split("-")[1]
    weights = tensors(run / "adapters.safetensors")
    assert all(np.abs(v).max() > 0 for k, v in weights.items() if k.endswith("lora_b"))  # trained, not the init
    result = export(run, "peft", tmp_path / "peft")
    assert result.files == ["README.md", "adapter_config.json", "adapter_model.safetensors", "chat_template.jinja"]
    assert result.precision == "float32" and result.run.method == method

    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    mlx_params = json.loads((run / "adapter_config.json").read_text())["lora_parameters"]
    assert config["base_model_name_or_path"] == tiny_llama_dir.name  # the card's name for it, not a local path
    assert config["use_dora"] is (method == "dora") and config["r"] == mlx_params["rank"] == 8
    assert config["lora_alpha"] == mlx_params["scale"] * config["r"]  # PEFT divides by r: no r-fold over-scaling
    blocks = {int(m.split(".")[2]) for m in config["target_modules"]}
    assert blocks == ({1} if method == "dora" else {0, 1})  # only the adapted (last) blocks
    peft_keys = tensors(tmp_path / "peft" / "adapter_model.safetensors")
    assert len(peft_keys) == len(weights) and all(k.startswith("base_model.model.model.layers.") for k in peft_keys)
    if method == "dora":
        assert any(k.endswith(".lora_magnitude_vector") for k in peft_keys)

    tuned = mlx_adapter_logits(tiny_llama_dir, run, method)
    assert max_diff(tuned, mlx_adapter_logits(tiny_llama_dir, None)) > 1.0  # the adapter matters
    diff = max_diff(peft_logits(tiny_llama_dir, tmp_path / "peft"), tuned)
    print(f"{name} -> peft: max |logit diff| {diff:.2e}")
    assert diff < 1e-4, diff


@pytest.mark.parametrize("name", ["torch-lora", "torch-dora"])
def test_torch_run_to_mlx_adapter_has_the_runs_logits(runs, name, tiny_llama_dir, tmp_path):
    import mlx.core as mx
    from mlx_lm.utils import load_adapters

    from mlxsft.models import load_mlx

    run, method = runs[name], name.split("-")[1]
    assert all(np.abs(v).max() > 0 for k, v in tensors(run / "adapter_model.safetensors").items() if ".lora_B." in k)
    export(run, "mlx-adapter", tmp_path / "mlx")
    config = json.loads((tmp_path / "mlx" / "adapter_config.json").read_text())
    assert config["fine_tune_type"] == method and config["num_layers"] == (1 if method == "dora" else 2)
    assert config["lora_parameters"]["scale"] == 2.0  # alpha 16 / rank 8: the scale, not alpha

    model, _, _ = load_mlx(str(tiny_llama_dir))
    load_adapters(model, str(tmp_path / "mlx"))  # what mlx_lm.load(base, adapter_path=DIR) does
    model.eval()
    exported = np.array(model(mx.array([IDS]))[0].astype(mx.float32))
    tuned = peft_logits(tiny_llama_dir, run)
    assert max_diff(tuned, peft_logits(tiny_llama_dir, None)) > 1.0
    diff = max_diff(exported, tuned)
    print(f"{name} -> mlx-adapter: max |logit diff| {diff:.2e}")
    assert diff < 1e-4, diff


@pytest.mark.parametrize("name", ["mlx-lora", "mlx-dora"])
def test_mlx_to_peft_to_mlx_is_the_identity(runs, name, tmp_path):
    from mlxsft.export.adapter_format import peft_to_mlx

    run = runs[name]
    export(run, "peft", tmp_path / "peft")
    import mlx.core as mx

    back, config = peft_to_mlx(dict(mx.load(str(tmp_path / "peft" / "adapter_model.safetensors"))),
                               json.loads((tmp_path / "peft" / "adapter_config.json").read_text()))
    original = tensors(run / "adapters.safetensors")
    assert sorted(back) == sorted(original)
    for k, v in original.items():
        np.testing.assert_array_equal(np.array(back[k]), v)  # transposes only: bit for bit
    mlx_config = json.loads((run / "adapter_config.json").read_text())
    assert config == {k: mlx_config[k] for k in ("fine_tune_type", "num_layers", "lora_parameters")}


def test_runs_in_the_asked_format_are_copied(runs, tmp_path):
    mlx_run, torch_run = runs["mlx-lora"], runs["torch-lora"]
    export(mlx_run, "mlx-adapter", tmp_path / "mlx")
    for f in ("adapters.safetensors", "adapter_config.json"):
        assert (tmp_path / "mlx" / f).read_bytes() == (mlx_run / f).read_bytes()
    export(torch_run, "peft", tmp_path / "peft")
    assert ((tmp_path / "peft" / "adapter_model.safetensors").read_bytes()
            == (torch_run / "adapter_model.safetensors").read_bytes())
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    original = json.loads((torch_run / "adapter_config.json").read_text())
    assert Path(original["base_model_name_or_path"]).is_absolute()  # PEFT records the local path ...
    assert config == {**original, "base_model_name_or_path": Path(original["base_model_name_or_path"]).name}
    card = (tmp_path / "peft" / "README.md").read_text()
    assert "library_name: peft" in card and "PeftModel.from_pretrained" in card and str(tmp_path) not in card


def test_full_fine_tune_and_bad_options_are_one_line_errors(runs, tmp_path, capsys):
    import shutil

    from mlxsft.cli.main import main

    full = tmp_path / "full-run"  # what RunFolder reads of an MLX full fine-tune: no training needed
    full.mkdir()
    shutil.copy(runs["mlx-lora"] / "config.yaml", full / "config.yaml")
    (full / "adapter_config.json").write_text(json.dumps({"fine_tune_type": "full", "num_layers": 2}))
    shutil.copy(runs["mlx-lora"] / "adapters.safetensors", full / "adapters.safetensors")
    for fmt in ("peft", "mlx-adapter"):
        with pytest.raises(RunError, match="full fine-tuning run has no adapter to export") as err:
            export(full, fmt, tmp_path / fmt)
        assert "--format hf or --format mlx" in str(err.value) and "\n" not in str(err.value)
        assert not (tmp_path / fmt).exists()
    with pytest.raises(SystemExit):
        main(["export", "--run", str(full), "--format", "peft", "--out", str(tmp_path / "cli")])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no adapter to export" in lines[0], lines
    with pytest.raises(ConfigError, match="--dtype applies to --format mlx and hf"):
        export(runs["mlx-lora"], "peft", tmp_path / "x", dtype="float16")


def test_cli_exports_peft_and_overwrites_its_own_export(runs, tiny_llama_dir, tmp_path):
    from click.testing import CliRunner

    from mlxsft.cli.main import cli

    out = tmp_path / "exports" / "peft"
    args = ["export", "--run", str(runs["mlx-lora"]), "--format", "peft", "--out", str(out)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, (r.output, r.exception)
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    r = CliRunner().invoke(cli, args + ["--overwrite"])  # the card marks it as an mlxsft export
    assert r.exit_code == 0, (r.output, r.exception)
    assert [p.name for p in out.parent.iterdir()] == ["peft"]


def test_qwen2_and_gemma3_module_paths_match_transformers(tmp_path, smol_tokenizer_dir, data_dir):
    """mlx-lm's module paths are transformers' for these too, so PEFT finds every target module."""
    from tests.tiny import tiny_hf_model

    for arch in ("qwen2", "gemma3"):
        base = tiny_hf_model(tmp_path / arch, arch, smol_tokenizer_dir)
        run = train(base, data_dir, tmp_path / f"run-{arch}", "mlx", num_layers=1)
        export(run, "peft", tmp_path / f"peft-{arch}")
        diff = max_diff(peft_logits(base, tmp_path / f"peft-{arch}"), mlx_adapter_logits(base, run))
        print(f"{arch} mlx -> peft: max |logit diff| {diff:.2e}")
        assert diff < 1e-4, (arch, diff)
