"""What only the torch training loop has, on a tiny random llama (CPU, fp32): DoRA through PEFT, packing and
checkpointing, PEFT loading the run, the before/after table, the memory plan. The checks both backends share are
in test_trainer.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from mlxsft.train import run_training  # noqa: E402
from tests.helpers import ROWS, make_cfg, run_weights, train_losses, write_data  # noqa: E402


def test_dora_trains(tiny_llama_dir, data_dir, tmp_path):
    out = run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", trainer="torch", iters=12, method="dora"))
    losses = train_losses(tmp_path / "run")
    assert losses[-1] < losses[0] and out.result.steps == 12
    cfgj = json.loads((tmp_path / "run" / "adapter_config.json").read_text())
    assert cfgj["use_dora"] is True and cfgj["r"] == 8 and cfgj["lora_alpha"] == 16.0
    assert any("lora_magnitude_vector" in k for k in run_weights(tmp_path / "run", "torch"))


@pytest.mark.parametrize("over", [dict(pack=True, batch_size=8), dict(grad_checkpoint=True, batch_size=8)],
                         ids=["packed", "grad-checkpoint"])
def test_packing_and_checkpointing_leave_the_step_unchanged(tiny_llama_dir, data_dir, tmp_path, over, monkeypatch):
    """One SGD step over all rows: packed rows (block-diagonal attention) or recomputed activations give
    the same update as plain padded rows."""
    # rows are ~40 tokens: 128-token sequences hold three
    common = dict(iters=1, optimizer="sgd", learning_rate=0.5, max_grad_norm=0, momentum=0.0, max_seq_len=128)
    plain = run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "plain", trainer="torch", batch_size=8,
                                  **common))
    import mlxsft.backends.loop as loop_mod  # the training batches are collated there, for both backends

    rows_per_sequence: list[int] = []
    real_collate = loop_mod.collate

    def spy(examples, plan, pad_id):
        batch = real_collate(examples, plan, pad_id)
        rows_per_sequence.extend(int(m) for m in batch.segment_ids.max(axis=1))
        return batch

    monkeypatch.setattr(loop_mod, "collate", spy)
    other = run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "other", trainer="torch", **{**common, **over}))
    assert other.result.trained_tokens == plain.result.trained_tokens  # every row once, padding not counted
    assert max(rows_per_sequence) == (3 if over.get("pack") else 1)  # really packed (or really not)
    a, b = run_weights(tmp_path / "plain", "torch"), run_weights(tmp_path / "other", "torch")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=2e-5)
    assert train_losses(tmp_path / "plain")[0] == pytest.approx(train_losses(tmp_path / "other")[0], rel=1e-5)


def test_peft_loads_the_run_adapter(tiny_llama_dir, data_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from mlxsft.backends.torch.generate import load_views
    from mlxsft.runs.read import read_json

    run = tmp_path / "run"
    out = run_training(make_cfg(tiny_llama_dir, data_dir, run, trainer="torch", iters=2))
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, str(run)).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        want = out.model.eval()(input_ids=ids).logits
        torch.testing.assert_close(loaded(input_ids=ids).logits, want)
        _, views = load_views(str(tiny_llama_dir), run, device="cpu")
        torch.testing.assert_close(views["tuned"].model(input_ids=ids).logits, want)
    assert read_json(run / "run_info.json") == {"backend": "torch", "base_model": str(tiny_llama_dir), "method": "lora"}


def test_compare_and_generate(tiny_llama_dir, data_dir, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": q, "reference": a}) + "\n" for q, a in ROWS[:2]))
    out = run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", trainer="torch", iters=2,
                                compare=True, compare_questions=str(questions), compare_max_tokens=4))
    report = out.compare
    assert report.models == ["base", "tuned"] and len(report.rows) == 2
    for row in report.rows:
        assert set(row.answers) == {"base", "tuned"} and 1 <= row.tokens["tuned"] <= 4
    assert (tmp_path / "run" / "compare.json").is_file()


def test_quantize_is_refused(tiny_llama_dir, data_dir, tmp_path):
    from mlxsft.errors import ConfigError

    with pytest.raises(ConfigError, match="quantize"):
        run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", trainer="torch", quantize=4))


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


def test_memory_plan_follows_micro_batches_trained_layers_and_the_supervised_share(tiny_llama_dir, tmp_path,
                                                                                   monkeypatch):
    """The torch plan (``--plan``): activations scale with the biggest micro-batch and the trained layers only
    (plus one layer's attention work whichever layers train), logits with the supervised share, and a CPU run
    counts the runtime's resident memory."""
    from mlxsft.backends.torch import memory

    long_rows = [(q * 6, a * 6) for q, a in ROWS]  # ~100-token rows, so a small budget cuts the batch
    data = write_data(tmp_path / "data", long_rows)

    def plan(**over):
        cfg = make_cfg(tiny_llama_dir, data, tmp_path / "p", trainer="torch", batch_size=8, max_seq_len=256, **over)
        return run_training(cfg, plan_only=True).plan

    whole, cut = plan(micro_batch_tokens=0), plan(micro_batch_tokens=128)
    assert cut.activations_gb < whole.activations_gb / 4 and cut.logits_gb < whole.logits_gb / 4
    assert cut.weights_gb == whole.weights_gb and cut.trainable_gb == whole.trainable_gb
    assert whole.runtime_gb > 0 and whole.total_gb > whole.weights_gb + whole.activations_gb
    one_layer = plan(micro_batch_tokens=0, num_layers=1)
    assert one_layer.activations_gb > whole.activations_gb / 2  # one layer's attention work stays
    monkeypatch.setattr(memory, "ATTN_WORK", 0.0)
    no_work, one_no_work = plan(micro_batch_tokens=0), plan(micro_batch_tokens=0, num_layers=1)
    assert one_no_work.activations_gb == pytest.approx(no_work.activations_gb / 2)  # tiny llama: 2 layers
    monkeypatch.undo()
    full = plan(micro_batch_tokens=0, method="full")
    assert full.activations_gb == pytest.approx(whole.activations_gb) and full.trainable_gb > 4 * whole.trainable_gb
