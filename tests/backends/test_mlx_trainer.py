"""The MLX training loop on a tiny random llama: learning, what changes, accumulation, resume, outputs."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlxsft.config import load_config
from mlxsft.data.batching import CPU_MICRO_BATCH_TOKENS
from mlxsft.runs import MetricsLog
from mlxsft.train import run_training

ROWS = [
    ("What is the capital of France?", "Paris."),
    ("Spell cat backwards.", "tac"),
    ("What is 2+2?", "4"),
    ("Name a primary color.", "Red."),
    ("What is the opposite of hot?", "Cold."),
    ("Say hello in Spanish.", "Hola."),
    ("How many legs does a spider have?", "Eight."),
    ("What color is the sky on a clear day?", "Blue."),
]


def write_data(folder: Path, rows=ROWS, multi_turn: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w") as f:
        for q, a in rows:
            msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            if multi_turn:
                msgs += [{"role": "user", "content": "Again?"}, {"role": "assistant", "content": a}]
            f.write(json.dumps({"messages": msgs}) + "\n")
    with open(folder / "valid.jsonl", "w") as f:
        for q, a in rows[:4]:
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}) + "\n")
    return folder


def make_cfg(model_dir: Path, data: Path, out: Path, **over):
    base = dict(model=str(model_dir), data=str(data), out=str(out), compare=False, iters=4, batch_size=4,
                learning_rate=3e-3, warmup=0, eval_every=0, save_every=0, report_every=1, max_seq_len=64,
                lr_schedule="constant", seed=0)
    base.update(over)
    return load_config(None, base)


def weights_of(run: Path, name: str = "adapters.safetensors") -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in mx.load(str(run / name)).items()}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"))


def test_loss_falls_on_a_memorisable_set(tiny_llama_dir, data_dir, tmp_path):
    out = run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=40, batch_size=8))
    rows = [r for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read() if r.get("train_loss") is not None]
    first, last = rows[0]["train_loss"], rows[-1]["train_loss"]
    assert first > 8.0  # random init over a 49k vocabulary
    assert last < 0.5 * first, (first, last)
    assert out.result.steps == 40


def test_lora_changes_every_lora_parameter_and_no_frozen_one(tiny_llama_dir, data_dir, tmp_path):
    from mlx.utils import tree_flatten

    from mlxsft.backends.mlx.adapters import make_trainable
    from mlxsft.models import load_mlx

    cfg = make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=3)
    out = run_training(cfg)
    after = {k: np.array(v) for k, v in tree_flatten(out.model.parameters())}
    # the same initial state: same base, same seed for the LoRA init
    model, _, _ = load_mlx(str(tiny_llama_dir))
    mx.random.seed(cfg.train.seed)
    make_trainable(model, cfg.lora)
    before = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    assert set(before) == set(after)
    lora_keys = {k for k in before if k.rsplit(".", 1)[-1] in ("lora_a", "lora_b")}
    assert len(lora_keys) == 2 * 7 * 2  # 7 linear layers per block, 2 blocks
    for k in before:
        changed = not np.array_equal(before[k], after[k])
        assert changed == (k in lora_keys), k
    assert set(weights_of(tmp_path / "run")) == lora_keys


def test_full_finetuning_changes_all_block_weights(tiny_llama_dir, data_dir, tmp_path):
    from mlx.utils import tree_flatten

    from mlxsft.models import load_mlx

    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", method="full", iters=2, learning_rate=1e-3))
    trained = weights_of(tmp_path / "run")
    base, _, _ = load_mlx(str(tiny_llama_dir))
    base = dict(tree_flatten(base.parameters()))
    block_keys = {k for k in base if k.startswith("model.layers.")}
    assert block_keys <= set(trained)
    for k in block_keys:
        assert not np.allclose(np.array(base[k]), trained[k]), f"{k} did not change"
    assert "model.embed_tokens.weight" not in trained  # embeddings are frozen unless asked


@pytest.mark.parametrize("over", [dict(method="dora"), dict(quantize=4)], ids=["dora", "qlora"])
def test_dora_and_qlora_train(tiny_llama_dir, data_dir, tmp_path, over):
    out = run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=12, **over))
    rows = [r for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read() if r.get("train_loss") is not None]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert out.result.steps == 12
    cfgj = json.loads((tmp_path / "run" / "adapter_config.json").read_text())
    assert cfgj["fine_tune_type"] == over.get("method", "lora")


@pytest.mark.parametrize("cut", [dict(batch_size=4, grad_accum=2), dict(micro_batch_tokens=100)],
                         ids=["accumulate-2-batches", "micro-batches"])
def test_a_cut_batch_gives_the_same_step_as_the_whole(tiny_llama_dir, data_dir, tmp_path, collated_shapes, cut):
    """One SGD step over all 8 rows: one pass of batch 8, two batches of 4 accumulated, or batch 8 cut by
    ``micro_batch_tokens`` into passes of a few rows. Different padding, same tokens, the same update."""
    common = dict(iters=1, optimizer="sgd", learning_rate=0.5, max_grad_norm=0)
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "a", batch_size=8, micro_batch_tokens=0, **common))
    assert collated_shapes == [(8, collated_shapes[0][1])]
    collated_shapes.clear()
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "b", **{"batch_size": 8, **cut, **common}))
    assert sum(rows for rows, _ in collated_shapes) == 8 and len(collated_shapes) >= 2
    if "micro_batch_tokens" in cut:
        assert all(rows * length <= 100 for rows, length in collated_shapes)
    a, b = weights_of(tmp_path / "a"), weights_of(tmp_path / "b")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    la = MetricsLog(tmp_path / "a" / "metrics.jsonl").read()[0]["train_loss"]
    lb = MetricsLog(tmp_path / "b" / "metrics.jsonl").read()[0]["train_loss"]
    assert la == pytest.approx(lb, rel=1e-5)


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tiny_llama_dir, data_dir, tmp_path):
    common = dict(iters=8, batch_size=2, save_every=2, learning_rate=3e-3, lr_schedule="cosine", warmup=2,
                  dropout=0.1)
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "full", **common))

    def interrupt_at_5(event, payload):
        if event == "step" and payload["step"] == 5:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: checkpoint, then stop

    cfg = make_cfg(tiny_llama_dir, data_dir, tmp_path / "cut", **common)
    first = run_training(cfg, callback=interrupt_at_5)
    assert first.result.interrupted and first.result.steps == 5
    cfg = make_cfg(tiny_llama_dir, data_dir, tmp_path / "cut", **common)
    second = run_training(cfg, resume=True)
    assert second.result.steps == 8
    a, b = weights_of(tmp_path / "full"), weights_of(tmp_path / "cut")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    steps = [r["step"] for r in MetricsLog(tmp_path / "cut" / "metrics.jsonl").read() if "train_loss" in r
             and r["train_loss"] is not None]
    assert steps == list(range(1, 9))  # no step logged twice


def test_run_folder_outputs_and_metrics_schema(tiny_llama_dir, data_dir, tmp_path):
    run = tmp_path / "run"
    run_training(make_cfg(tiny_llama_dir, data_dir, run, iters=4, eval_every=2, save_every=2))
    for name in ("adapters.safetensors", "adapter_config.json", "config.yaml", "chat_template.jinja",
                 "metrics.jsonl", "loss.png", "best/adapters.safetensors", "best/adapter_config.json",
                 "checkpoints/latest"):
        assert (run / name).is_file(), name
    records = MetricsLog(run / "metrics.jsonl").read()
    train = [r for r in records if r.get("train_loss") is not None]
    val = [r for r in records if r.get("val_loss") is not None]
    assert [r["step"] for r in train] == [1, 2, 3, 4] and [r["step"] for r in val] == [2, 4]
    for r in train:
        for key in MetricsLog.FIELDS:
            assert key in r
        assert r["learning_rate"] > 0 and r["tokens_per_sec"] > 0 and r["trained_tokens"] > 0
        assert r["peak_memory_gb"] > 0 and r["grad_norm"] >= 0
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    # the resolved config reloads to the same job; the unset micro-batch size is recorded as the one used (CPU)
    again = load_config(run / "config.yaml")
    assert again.train.micro_batch_tokens == CPU_MICRO_BATCH_TOKENS
    assert again.hash() == make_cfg(tiny_llama_dir, data_dir, run, iters=4, eval_every=2, save_every=2,
                                    micro_batch_tokens=CPU_MICRO_BATCH_TOKENS).hash()


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
    for k, v in weights_of(run).items():
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
    a, b = weights_of(tmp_path / "a"), weights_of(tmp_path / "b")
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
