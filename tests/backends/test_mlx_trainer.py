"""What only the MLX training loop has, on a tiny random llama: DoRA and QLoRA, adapters mlx-lm loads, gradient
checkpointing, packing, the default config. The checks both backends share are in test_trainer.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlxsft.config import load_config
from mlxsft.runs import MetricsLog
from mlxsft.train import run_training
from tests.helpers import make_cfg, run_weights


@pytest.mark.parametrize("over", [dict(method="dora"), dict(quantize=4)], ids=["dora", "qlora"])
def test_dora_and_qlora_train(tiny_llama_dir, data_dir, tmp_path, over):
    out = run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=12, **over))
    rows = [r for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read() if r.get("train_loss") is not None]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert out.result.steps == 12
    cfgj = json.loads((tmp_path / "run" / "adapter_config.json").read_text())
    assert cfgj["fine_tune_type"] == over.get("method", "lora")


def test_adapters_load_in_mlx_lm(tiny_llama_dir, data_dir, tmp_path):
    from mlx_lm import generate, load

    run = tmp_path / "run"
    run_training(make_cfg(tiny_llama_dir, data_dir, run, iters=2))
    model, tok = load(str(tiny_llama_dir), adapter_path=str(run))
    text = generate(model, tok, prompt="hi", max_tokens=3)
    assert isinstance(text, str)
    # the loaded adapter weights are the trained ones
    from mlx.utils import tree_flatten

    params = dict(tree_flatten(model.parameters()))
    for k, v in run_weights(run).items():
        np.testing.assert_array_equal(np.array(params[k]), v)


def test_non_empty_out_is_refused(tiny_llama_dir, data_dir, tmp_path):
    from mlxsft.errors import RunError

    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="not empty"):
        run_training(make_cfg(tiny_llama_dir, data_dir, out))
    assert (out / "keep.txt").read_text() == "mine"


def test_gradient_checkpointing_gives_the_same_step(tiny_llama_dir, data_dir, tmp_path):
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "a", iters=2))
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "b", iters=2, grad_checkpoint=True))
    a, b = run_weights(tmp_path / "a"), run_weights(tmp_path / "b")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)


def test_packed_training_trains(tiny_llama_dir, data_dir, tmp_path):
    out = run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=6, pack=True, max_seq_len=128))
    assert out.result.steps == 6 and out.result.train_loss < 12


def test_default_config_file_matches_the_built_in_defaults():
    # `mlxsft train` with no arguments (the demo) must be what configs/default.yaml says
    from mlxsft.config import Config, flat_fields

    root = Path(__file__).resolve().parents[2]
    from_file, built_in = flat_fields(load_config(root / "configs" / "default.yaml")), flat_fields(Config())
    assert from_file == built_in
