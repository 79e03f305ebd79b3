"""The training loop on a tiny random llama, once per backend: learning, what changes, accumulation, resume, outputs.

Each test runs ``run_training`` with the MLX backend and with ``backend: torch`` (CPU, fp32), from each backend's
own tiny config (``make_cfg(..., trainer=backend)``). What only one backend has is in test_mlx_trainer.py and
test_torch_trainer.py.

    pytest tests/backends/test_trainer.py -k torch
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from mlxsft.config import load_config
from mlxsft.data.batching import CPU_MICRO_BATCH_TOKENS
from mlxsft.runs import MetricsLog
from mlxsft.train import run_training
from tests.helpers import ADAPTER_FILE, make_cfg, run_weights, train_losses

# what a full fine-tune saves: MLX its trained tensors under the adapter file's name, torch trainable.safetensors
FULL_FILE = {"mlx": "adapters.safetensors", "torch": "trainable.safetensors"}


@pytest.fixture(params=["mlx", "torch"])
def backend(request) -> str:
    """Each test once per backend; one whose packages are missing is skipped."""
    if request.param == "mlx":
        pytest.importorskip("mlx.core")
    else:
        pytest.importorskip("torch")
        pytest.importorskip("peft")
    return request.param


def parameters(model, backend: str) -> dict[str, np.ndarray]:
    """Every parameter of a loaded model by its name, copied to numpy."""
    if backend == "mlx":
        from mlx.utils import tree_flatten

        return {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def base_parameters(model_dir: Path, backend: str) -> dict[str, np.ndarray]:
    """The base model's parameters as that backend loads them (torch: with the Hugging Face names)."""
    if backend == "mlx":
        from mlxsft.models import load_mlx

        return parameters(load_mlx(str(model_dir))[0], backend)
    from transformers import AutoModelForCausalLM

    return parameters(AutoModelForCausalLM.from_pretrained(model_dir), backend)


def initial_parameters(model_dir: Path, cfg, backend: str) -> dict[str, np.ndarray]:
    """The state a run starts from: the same base, the same seed for the LoRA init."""
    if backend == "mlx":
        import mlx.core as mx

        from mlxsft.backends.mlx.adapters import make_trainable
        from mlxsft.models import load_mlx

        model, _, _ = load_mlx(str(model_dir))
        mx.random.seed(cfg.train.seed)
        make_trainable(model, cfg.lora)
        return parameters(model, backend)
    import torch

    from mlxsft.backends.torch.adapters import make_trainable
    from mlxsft.backends.torch.device import pick_device
    from mlxsft.backends.torch.model import load_model

    model, _, _ = load_model(cfg.model.model, pick_device("cpu"))
    torch.manual_seed(cfg.train.seed)
    return parameters(make_trainable(model, cfg.lora), backend)


def is_lora_key(name: str, backend: str) -> bool:
    if backend == "mlx":
        return name.rsplit(".", 1)[-1] in ("lora_a", "lora_b")
    return ".lora_A." in name or ".lora_B." in name  # peft: ...q_proj.lora_A.default.weight


def saved_name(name: str, backend: str) -> str:
    """A trained parameter's name in the run folder's adapter file (PEFT saves without the adapter's name)."""
    return name if backend == "mlx" else name.replace(".default", "")


def test_loss_falls_on_a_memorisable_set(backend, tiny_llama_dir, data_dir, tmp_path):
    over = {"mlx": dict(iters=40, batch_size=8), "torch": dict(iters=30)}[backend]
    out = run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", trainer=backend, **over))
    losses = train_losses(tmp_path / "run")
    assert losses[0] > 8.0  # random init over a 49k vocabulary
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    assert out.result.steps == over["iters"]


def test_lora_changes_every_lora_parameter_and_no_frozen_one(backend, tiny_llama_dir, data_dir, tmp_path):
    cfg = make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", trainer=backend, iters=3)
    out = run_training(cfg)
    after = parameters(out.model, backend)
    before = initial_parameters(tiny_llama_dir, cfg, backend)
    assert set(before) == set(after)
    lora_keys = {k for k in before if is_lora_key(k, backend)}
    assert len(lora_keys) == 2 * 7 * 2  # 7 linear layers per block, 2 blocks, A and B
    for k in before:
        changed = not np.array_equal(before[k], after[k])
        assert changed == (k in lora_keys), k
    # the run folder's adapter holds the same tensors, and only those
    saved = run_weights(tmp_path / "run", backend)
    assert set(saved) == {saved_name(k, backend) for k in lora_keys}
    for k in lora_keys:
        np.testing.assert_array_equal(saved[saved_name(k, backend)], after[k])


def test_full_finetuning_changes_all_block_weights(backend, tiny_llama_dir, data_dir, tmp_path):
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", trainer=backend, method="full", iters=2,
                          learning_rate=1e-3))
    trained = run_weights(tmp_path / "run", backend, FULL_FILE[backend])
    base = base_parameters(tiny_llama_dir, backend)
    block_keys = {k for k in base if k.startswith("model.layers.")}
    assert block_keys <= set(trained)
    for k in block_keys:
        assert not np.allclose(base[k], trained[k]), f"{k} did not change"
    assert "model.embed_tokens.weight" not in trained  # embeddings are frozen unless asked
    if backend == "torch":
        info = json.loads((tmp_path / "run" / "run_info.json").read_text())
        assert info == {"backend": "torch", "base_model": str(tiny_llama_dir), "method": "full"}


@pytest.mark.parametrize("cut", [dict(batch_size=4, grad_accum=2), dict(micro_batch_tokens=100)],
                         ids=["accumulate-2-batches", "micro-batches"])
def test_a_cut_batch_gives_the_same_step_as_the_whole(backend, tiny_llama_dir, data_dir, tmp_path, collated_shapes,
                                                      cut):
    """One SGD step over all 8 rows: one pass of batch 8, two batches of 4 accumulated, or batch 8 cut by
    ``micro_batch_tokens`` into passes of a few rows. Different padding, same tokens, the same update."""
    common = dict(iters=1, optimizer="sgd", learning_rate=0.5, max_grad_norm=0)
    if backend == "torch":
        common["momentum"] = 0.0  # (one step: plain SGD either way)
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "a", trainer=backend, batch_size=8,
                          micro_batch_tokens=0, **common))
    assert [rows for rows, _ in collated_shapes] == [8]
    collated_shapes.clear()
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "b", trainer=backend,
                          **{"batch_size": 8, **cut, **common}))
    assert sum(rows for rows, _ in collated_shapes) == 8 and len(collated_shapes) >= 2
    if "micro_batch_tokens" in cut:
        assert all(rows * length <= 100 for rows, length in collated_shapes)
    a, b = run_weights(tmp_path / "a", backend), run_weights(tmp_path / "b", backend)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    assert train_losses(tmp_path / "a")[0] == pytest.approx(train_losses(tmp_path / "b")[0], rel=1e-5)


def test_interrupted_and_resumed_run_ends_with_the_same_weights(backend, tiny_llama_dir, data_dir, tmp_path):
    common = dict(iters=8, batch_size=2, save_every=2, learning_rate=3e-3, lr_schedule="cosine", warmup=2,
                  dropout=0.1)
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "full", trainer=backend, **common))

    def interrupt_at_5(event, payload):
        if event == "step" and payload["step"] == 5:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: checkpoint, then stop

    cfg = make_cfg(tiny_llama_dir, data_dir, tmp_path / "cut", trainer=backend, **common)
    first = run_training(cfg, callback=interrupt_at_5)
    assert first.result.interrupted and first.result.steps == 5
    cfg = make_cfg(tiny_llama_dir, data_dir, tmp_path / "cut", trainer=backend, **common)
    second = run_training(cfg, resume=True)
    assert second.result.steps == 8
    a, b = run_weights(tmp_path / "full", backend), run_weights(tmp_path / "cut", backend)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    steps = [r["step"] for r in MetricsLog(tmp_path / "cut" / "metrics.jsonl").read()
             if r.get("train_loss") is not None]
    assert steps == list(range(1, 9))  # no step logged twice
    np.testing.assert_allclose(train_losses(tmp_path / "cut"), train_losses(tmp_path / "full"), rtol=1e-5)


def test_run_folder_outputs_and_metrics_schema(backend, tiny_llama_dir, data_dir, tmp_path):
    run = tmp_path / "run"
    events: list[str] = []
    run_training(make_cfg(tiny_llama_dir, data_dir, run, trainer=backend, iters=4, eval_every=2, save_every=2),
                 callback=lambda e, p: events.append(e))
    adapter = ADAPTER_FILE[backend]
    names = [adapter, "adapter_config.json", "config.yaml", "chat_template.jinja", "metrics.jsonl", "loss.png",
             f"best/{adapter}", "best/adapter_config.json", "checkpoints/latest"]
    if backend == "torch":
        names.append("run_info.json")  # tells chat, eval and export this is a torch run
    for name in names:
        assert (run / name).is_file(), name
    if backend == "torch":
        assert json.loads((run / "run_info.json").read_text())["backend"] == "torch"
    assert events[0] == "message" and {"data", "plan", "start", "step", "eval", "checkpoint", "end"} <= set(events)
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
    assert again.hash() == make_cfg(tiny_llama_dir, data_dir, run, trainer=backend, iters=4, eval_every=2,
                                    save_every=2, micro_batch_tokens=CPU_MICRO_BATCH_TOKENS).hash()
