"""The model card: base model, data, method, hyperparameters and final metrics come from the run's files."""

from __future__ import annotations

from pathlib import Path

from mlxsft.config import load_config
from mlxsft.export.card import CardExport, model_card
from mlxsft.export.run import RunInfo
from mlxsft.export.stops import Stops

METRICS = [
    {"step": 1, "train_loss": 9.5, "trained_tokens": 100},
    {"step": 2, "train_loss": 4.25, "trained_tokens": 200},
    {"step": 2, "val_loss": 3.0, "trained_tokens": 200},
    {"step": 4, "train_loss": 2.125, "trained_tokens": 400},
    {"step": 4, "val_loss": 3.5, "trained_tokens": 400, "elapsed_s": 61.2},
]
COMPARE = {"models": ["base", "tuned"], "n_questions": 60, "n_scored": 40,
           "totals": {"base": {"exact": 0.0, "numeric": 0.1, "contains": 0.5},
                      "tuned": {"exact": 0.075, "numeric": 0.2, "contains": 0.55}}}


def card_for(tmp_path: Path, **over) -> str:
    cfg = load_config(None, dict(model="smollm2-135m-instruct", data="my_chats.jsonl", rank=16, alpha=32.0,
                                 learning_rate=2e-4, epochs=2, batch_size=4, quantize=4, **over))
    run = RunInfo(weights_dir=tmp_path / "sft-1", run_dir=tmp_path / "sft-1", backend="mlx", method="lora",
                  base_model="smollm2-135m-instruct", config=cfg, metrics=METRICS, compare=COMPARE)
    stops = Stops(eos_id=2, eot_id=2, eot_text="<|im_end|>", ids=[2], strings=["<|im_end|>"])
    return model_card(run, CardExport(format="gguf", precision="q8_0", stops=stops,
                                      files=["sft-1-q8_0.gguf", "Modelfile", "README.md"],
                                      base_name="SmolLM2-135M-Instruct"))


def test_card_fields(tmp_path):
    text = card_for(tmp_path)
    lines = text.splitlines()
    assert lines[0] == "---" and "base_model: SmolLM2-135M-Instruct" in lines and "library_name: gguf" in lines
    assert "- qlora" in lines and "# sft-1" in lines
    for row in ("| model | smollm2-135m-instruct |", "| dataset | my_chats.jsonl |", "| method | QLoRA (4-bit base) |",
                "| rank | 16 |", "| alpha | 32.0 |", "| scale (alpha / rank) | 2 |", "| learning rate | 0.0002 |",
                "| epochs | 2 |", "| batch size | 4 |",
                "| steps | 4 |", "| trained tokens | 400 |", "| first train loss | 9.5 |", "| final train loss | 2.125 |",
                "| final validation loss | 3.5 |", "| best validation loss | 3 (step 2) |", "| training time | 61 s |",
                "| precision | q8_0 |", "| stop token ids | 2 |", "| end of turn | `<\\|im_end\\|>` |"):
        assert row in lines, row
    assert "| tuned | 7.5% | 20.0% | 55.0% |" in lines and "| base | 0.0% | 10.0% | 50.0% |" in lines
    assert "ollama create my-model -f Modelfile && ollama run my-model" in lines


def test_card_for_full_fine_tuning_without_metrics(tmp_path):
    cfg = load_config(None, dict(model="m", method="full"))
    run = RunInfo(weights_dir=tmp_path, run_dir=tmp_path, backend="torch", method="full", base_model="m", config=cfg)
    stops = Stops(eos_id=None, eot_id=None, eot_text="", ids=[], strings=[])
    text = model_card(run, CardExport(format="hf", precision="bfloat16", stops=stops))
    assert "| method | full fine-tuning |" in text and "| rank |" not in text
    assert "| metrics | none recorded |" in text and "## Before / after" not in text
    assert "library_name: transformers" in text
