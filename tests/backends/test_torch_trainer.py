"""The torch training loop on a tiny random llama: learning, what changes, accumulation, resume, outputs.

The same checks as ``test_mlx_trainer.py``, through ``run_training`` with ``backend: torch`` (CPU, fp32).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from mlxsft.config import load_config  # noqa: E402
from mlxsft.data.batching import CPU_MICRO_BATCH_TOKENS  # noqa: E402
from mlxsft.runs import MetricsLog  # noqa: E402

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


def write_data(folder: Path, rows=ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w") as f:
        for q, a in rows:
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}) + "\n")
    with open(folder / "valid.jsonl", "w") as f:
        for q, a in rows[:4]:
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}) + "\n")
    return folder


def make_cfg(model_dir: Path, data: Path, out: Path, **over):
    base = dict(model=str(model_dir), data=str(data), out=str(out), compare=False, iters=4, batch_size=4,
                learning_rate=1e-2, warmup=0, eval_every=0, save_every=0, report_every=1, max_seq_len=64,
                lr_schedule="constant", seed=0, backend="torch")
    base.update(over)
    return load_config(None, base)


def train(cfg, **kw):
    from mlxsft.train import run_training

    return run_training(cfg, **kw)


def run_weights(run: Path, name: str = "adapter_model.safetensors") -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run / name))


def train_losses(run: Path) -> list[float]:
    return [r["train_loss"] for r in MetricsLog(run / "metrics.jsonl").read() if r.get("train_loss") is not None]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"))


def test_loss_falls_on_a_memorisable_set(tiny_llama_dir, data_dir, tmp_path):
    out = train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=30))
    losses = train_losses(tmp_path / "run")
    assert losses[0] > 8.0  # random init over a 49k vocabulary
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    assert out.result.steps == 30


def _initial_model(cfg):
    """The same initial state as a run: same base, same seed for the LoRA init."""
    from mlxsft.backends.torch.adapters import make_trainable
    from mlxsft.backends.torch.device import pick_device
    from mlxsft.backends.torch.model import load_model

    model, _, _ = load_model(cfg.model.model, pick_device("cpu"))
    torch.manual_seed(cfg.train.seed)
    return make_trainable(model, cfg.lora)


def test_lora_changes_every_lora_parameter_and_no_frozen_one(tiny_llama_dir, data_dir, tmp_path):
    cfg = make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=3)
    out = train(cfg)
    after = {k: v.detach().clone() for k, v in out.model.state_dict().items()}
    before = _initial_model(cfg).state_dict()
    assert set(before) == set(after)
    lora_keys = {k for k in before if ".lora_A." in k or ".lora_B." in k}
    assert len(lora_keys) == 2 * 7 * 2  # 7 linear layers per block, 2 blocks, A and B
    for k in before:
        changed = not torch.equal(before[k], after[k])
        assert changed == (k in lora_keys), k
    # the run folder's adapter is PEFT's: the same tensors under PEFT's saved names
    saved = run_weights(tmp_path / "run")
    assert len(saved) == len(lora_keys)
    for k in lora_keys:
        np.testing.assert_array_equal(saved[k.replace(".default", "")], after[k].numpy())


def test_full_finetuning_changes_all_block_weights(tiny_llama_dir, data_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", method="full", iters=2, learning_rate=1e-3))
    trained = run_weights(tmp_path / "run", "trainable.safetensors")
    base = {k: v.numpy() for k, v in AutoModelForCausalLM.from_pretrained(tiny_llama_dir).state_dict().items()}
    block_keys = {k for k in base if k.startswith("model.layers.")}
    assert block_keys <= set(trained)
    for k in block_keys:
        assert not np.allclose(base[k], trained[k]), f"{k} did not change"
    assert "model.embed_tokens.weight" not in trained  # embeddings are frozen unless asked
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert info == {"backend": "torch", "base_model": str(tiny_llama_dir), "method": "full"}


def test_dora_trains(tiny_llama_dir, data_dir, tmp_path):
    out = train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=12, method="dora"))
    losses = train_losses(tmp_path / "run")
    assert losses[-1] < losses[0] and out.result.steps == 12
    cfgj = json.loads((tmp_path / "run" / "adapter_config.json").read_text())
    assert cfgj["use_dora"] is True and cfgj["r"] == 8 and cfgj["lora_alpha"] == 16.0
    assert any("lora_magnitude_vector" in k for k in run_weights(tmp_path / "run"))


@pytest.mark.parametrize("cut", [dict(batch_size=4, grad_accum=2), dict(micro_batch_tokens=100)],
                         ids=["accumulate-2-batches", "micro-batches"])
def test_a_cut_batch_gives_the_same_step_as_the_whole(tiny_llama_dir, data_dir, tmp_path, collated_shapes, cut):
    """One SGD step over all 8 rows, whole or cut (as in the MLX trainer's test): the same update."""
    common = dict(iters=1, optimizer="sgd", learning_rate=0.5, max_grad_norm=0, momentum=0.0)
    train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "a", batch_size=8, micro_batch_tokens=0, **common))
    assert [rows for rows, _ in collated_shapes] == [8]
    collated_shapes.clear()
    train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "b", **{"batch_size": 8, **cut, **common}))
    assert sum(rows for rows, _ in collated_shapes) == 8 and len(collated_shapes) >= 2
    a, b = run_weights(tmp_path / "a"), run_weights(tmp_path / "b")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    assert train_losses(tmp_path / "a")[0] == pytest.approx(train_losses(tmp_path / "b")[0], rel=1e-5)


@pytest.mark.parametrize("over", [dict(pack=True, batch_size=8), dict(grad_checkpoint=True, batch_size=8)],
                         ids=["packed", "grad-checkpoint"])
def test_packing_and_checkpointing_leave_the_step_unchanged(tiny_llama_dir, data_dir, tmp_path, over, monkeypatch):
    """One SGD step over all rows: packed rows (block-diagonal attention) or recomputed activations give
    the same update as plain padded rows."""
    # rows are ~40 tokens: 128-token sequences hold three
    common = dict(iters=1, optimizer="sgd", learning_rate=0.5, max_grad_norm=0, momentum=0.0, max_seq_len=128)
    plain = train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "plain", batch_size=8, **common))
    import mlxsft.backends.loop as loop_mod  # the training batches are collated there, for both backends

    rows_per_sequence: list[int] = []
    real_collate = loop_mod.collate

    def spy(examples, plan, pad_id):
        batch = real_collate(examples, plan, pad_id)
        rows_per_sequence.extend(int(m) for m in batch.segment_ids.max(axis=1))
        return batch

    monkeypatch.setattr(loop_mod, "collate", spy)
    other = train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "other", **{**common, **over}))
    assert other.result.trained_tokens == plain.result.trained_tokens  # every row once, padding not counted
    assert max(rows_per_sequence) == (3 if over.get("pack") else 1)  # really packed (or really not)
    a, b = run_weights(tmp_path / "plain"), run_weights(tmp_path / "other")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=2e-5)
    assert train_losses(tmp_path / "plain")[0] == pytest.approx(train_losses(tmp_path / "other")[0], rel=1e-5)


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tiny_llama_dir, data_dir, tmp_path):
    common = dict(iters=8, batch_size=2, save_every=2, learning_rate=3e-3, lr_schedule="cosine", warmup=2,
                  dropout=0.1)
    train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "full", **common))

    def interrupt_at_5(event, payload):
        if event == "step" and payload["step"] == 5:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: checkpoint, then stop

    first = train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "cut", **common), callback=interrupt_at_5)
    assert first.result.interrupted and first.result.steps == 5
    second = train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "cut", **common), resume=True)
    assert second.result.steps == 8
    a, b = run_weights(tmp_path / "full"), run_weights(tmp_path / "cut")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    steps = [r["step"] for r in MetricsLog(tmp_path / "cut" / "metrics.jsonl").read()
             if r.get("train_loss") is not None]
    assert steps == list(range(1, 9))  # no step logged twice
    np.testing.assert_allclose(train_losses(tmp_path / "cut"), train_losses(tmp_path / "full"), rtol=1e-5)


def test_run_folder_outputs_and_metrics_schema(tiny_llama_dir, data_dir, tmp_path):
    run = tmp_path / "run"
    events: list[str] = []
    train(make_cfg(tiny_llama_dir, data_dir, run, iters=4, eval_every=2, save_every=2),
          callback=lambda e, p: events.append(e))
    for name in ("adapter_model.safetensors", "adapter_config.json", "run_info.json", "config.yaml",
                 "chat_template.jinja", "metrics.jsonl", "loss.png", "best/adapter_model.safetensors",
                 "best/adapter_config.json", "checkpoints/latest"):
        assert (run / name).is_file(), name
    assert json.loads((run / "run_info.json").read_text())["backend"] == "torch"
    assert events[0] == "message" and {"data", "plan", "start", "step", "eval", "checkpoint", "end"} <= set(events)
    records = MetricsLog(run / "metrics.jsonl").read()
    train_rows = [r for r in records if r.get("train_loss") is not None]
    val = [r for r in records if r.get("val_loss") is not None]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4] and [r["step"] for r in val] == [2, 4]
    for r in train_rows:
        for key in MetricsLog.FIELDS:
            assert key in r
        assert r["learning_rate"] > 0 and r["tokens_per_sec"] > 0 and r["trained_tokens"] > 0
        assert r["peak_memory_gb"] > 0 and r["grad_norm"] >= 0
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    again = load_config(run / "config.yaml")
    assert again.train.micro_batch_tokens == CPU_MICRO_BATCH_TOKENS  # unset: the CPU's, recorded for a resume
    assert again.hash() == make_cfg(tiny_llama_dir, data_dir, run, iters=4, eval_every=2, save_every=2,
                                    micro_batch_tokens=CPU_MICRO_BATCH_TOKENS).hash()


def test_peft_loads_the_run_adapter(tiny_llama_dir, data_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from mlxsft.backends.torch.generate import load_views
    from mlxsft.backends.torch.model import read_run_info

    run = tmp_path / "run"
    out = train(make_cfg(tiny_llama_dir, data_dir, run, iters=2))
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, str(run)).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        want = out.model.eval()(input_ids=ids).logits
        torch.testing.assert_close(loaded(input_ids=ids).logits, want)
        _, views = load_views(str(tiny_llama_dir), run, device="cpu")
        torch.testing.assert_close(views["tuned"].model(input_ids=ids).logits, want)
    assert read_run_info(run) == {"backend": "torch", "base_model": str(tiny_llama_dir), "method": "lora"}


def test_compare_and_generate(tiny_llama_dir, data_dir, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": q, "reference": a}) + "\n" for q, a in ROWS[:2]))
    out = train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=2, compare=True,
                         compare_questions=str(questions), compare_max_tokens=4))
    report = out.compare
    assert report.models == ["base", "tuned"] and len(report.rows) == 2
    for row in report.rows:
        assert set(row.answers) == {"base", "tuned"} and 1 <= row.tokens["tuned"] <= 4
    assert (tmp_path / "run" / "compare.json").is_file()


def test_quantize_is_refused(tiny_llama_dir, data_dir, tmp_path):
    from mlxsft.errors import ConfigError

    with pytest.raises(ConfigError, match="quantize"):
        train(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", quantize=4))


def test_an_mlx_folder_loads_in_torch_with_the_same_outputs(tiny_llama_dir):
    """An unquantised MLX conversion is HF-format safetensors: torch loads it and computes the same logits."""
    from transformers import AutoModelForCausalLM

    from mlxsft.backends.torch.device import pick_device
    from mlxsft.backends.torch.model import load_model
    from mlxsft.models import mlx_model_path, resolve_model

    folder = mlx_model_path(str(tiny_llama_dir))
    assert resolve_model(str(folder)).is_mlx
    model, tok, _ = load_model(str(folder), pick_device("cpu"))
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    ref = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(input_ids=ids).logits, ref(input_ids=ids).logits)
    assert tok.pad_token_id is not None or tok.eos_token_id is not None


def test_memory_plan_follows_micro_batches_trained_layers_and_the_supervised_share(tiny_llama_dir, tmp_path):
    """The torch plan (``--plan``): activations scale with the biggest micro-batch and the trained layers only,
    logits with the supervised share, and a CPU run counts the runtime's resident memory."""
    long_rows = [(q * 6, a * 6) for q, a in ROWS]  # ~100-token rows, so a small budget cuts the batch
    data = write_data(tmp_path / "data", long_rows)

    def plan(**over):
        cfg = make_cfg(tiny_llama_dir, data, tmp_path / "p", batch_size=8, max_seq_len=256, **over)
        return train(cfg, plan_only=True).plan

    whole, cut = plan(micro_batch_tokens=0), plan(micro_batch_tokens=128)
    assert cut.activations_gb < whole.activations_gb / 4 and cut.logits_gb < whole.logits_gb / 4
    assert cut.weights_gb == whole.weights_gb and cut.trainable_gb == whole.trainable_gb
    assert whole.runtime_gb > 0 and whole.total_gb > whole.weights_gb + whole.activations_gb
    one_layer = plan(micro_batch_tokens=0, num_layers=1)
    assert one_layer.activations_gb == pytest.approx(whole.activations_gb / 2)  # tiny llama: 2 layers
    full = plan(micro_batch_tokens=0, method="full")
    assert full.activations_gb == pytest.approx(whole.activations_gb) and full.trainable_gb > 4 * whole.trainable_gb
