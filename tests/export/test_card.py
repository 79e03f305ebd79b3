"""The model card: base model, data, method, hyperparameters and final metrics come from the run's files."""

from __future__ import annotations

from pathlib import Path

from mlxsft.config import load_config
from mlxsft.export.card import CardExport, model_card
from mlxsft.runs.read import RunFolder
from mlxsft.export.stops import Stops

METRICS = [
    {"step": 1, "train_loss": 9.5, "trained_tokens": 100},
    {"step": 2, "train_loss": 4.25, "trained_tokens": 200},
    {"step": 2, "val_loss": 3.0, "trained_tokens": 200},
    {"step": 4, "train_loss": 2.125, "trained_tokens": 400},
    {"step": 4, "val_loss": 3.5, "trained_tokens": 400, "elapsed_s": 61.2},
]
COMPARE = {"models": ["base", "tuned"], "n_questions": 60, "n_scored": 40,
           "totals": {"base": {"right": 0.1, "exact": 0.0, "numeric": 0.1, "contains": 0.5, "stop_rate": 0.05},
                      "tuned": {"right": 0.8, "exact": 0.075, "numeric": 0.2, "contains": 0.55, "stop_rate": 1.0},
                      "wins": 29, "regressions": 1, "unchanged": 10},
           "forgetting": {"kl": 0.0412, "tuned_nll": 2.5, "base_nll": 2.25, "prompts": 16, "tokens": 512}}


def card_for(tmp_path: Path, **over) -> str:
    cfg = load_config(None, dict(model="smollm2-135m-instruct", data="my_chats.jsonl", rank=16, alpha=32.0,
                                 learning_rate=2e-4, epochs=2, batch_size=4, quantize=4, **over))
    run = RunFolder(weights_dir=tmp_path / "sft-1", run_dir=tmp_path / "sft-1", backend="mlx", method="lora",
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
    assert "| tuned | 80.0% | 7.5% | 20.0% | 55.0% | 100.0% |" in lines
    assert "| base | 10.0% | 0.0% | 10.0% | 50.0% | 5.0% |" in lines
    assert "Learned: 29 wins, 1 regressions, 10 unchanged." in lines
    assert any(ln.startswith("Forgetting: KL(base ‖ tuned) 0.041 nats/token") for ln in lines)
    assert "ollama create my-model -f Modelfile && ollama run my-model" in lines


def test_card_for_full_fine_tuning_without_metrics(tmp_path):
    cfg = load_config(None, dict(model="m", method="full"))
    run = RunFolder(weights_dir=tmp_path, run_dir=tmp_path, backend="torch", method="full", base_model="m", config=cfg)
    stops = Stops(eos_id=None, eot_id=None, eot_text="", ids=[], strings=[])
    text = model_card(run, CardExport(format="hf", precision="bfloat16", stops=stops))
    assert "| method | full fine-tuning |" in text and "| rank |" not in text
    assert "| metrics | none recorded |" in text and "## Before / after" not in text
    assert "library_name: transformers" in text


def test_card_names_no_local_path_and_no_user(tmp_path, monkeypatch):
    """A card is published: the base model, the dataset and the run are named, never located."""
    home = tmp_path / "home" / "alice-q7"
    monkeypatch.setenv("HOME", str(home))
    model = home / "models" / "my-llama"
    model.mkdir(parents=True)
    data = home / "data" / "chats.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("")
    run_dir = home / "runs" / "sft-1"
    (run_dir / "best").mkdir(parents=True)
    stops = Stops(eos_id=2, eot_id=2, eot_text="<|im_end|>", ids=[2], strings=["<|im_end|>"])
    for spec, base_name in (("~/models/my-llama", ""), (str(model), "my-llama"), ("./models/my-llama", "")):
        monkeypatch.chdir(home)
        cfg = load_config(None, dict(model=spec, data=str(data)))
        run = RunFolder(weights_dir=run_dir / "best", run_dir=run_dir, backend="mlx", method="lora", base_model=spec,
                      config=cfg, metrics=METRICS)
        text = model_card(run, CardExport(format="hf", precision="float16", stops=stops, base_name=base_name))
        for leak in (str(tmp_path), "alice", "/home", "~"):
            assert leak not in text, (spec, leak)
        lines = text.splitlines()
        for row in ("base_model: my-llama", "| model | my-llama |", "| dataset | chats.jsonl |",
                    "| from run | sft-1/best |"):
            assert row in lines, (spec, row)


def test_card_keeps_hub_ids_and_aliases():
    from mlxsft.export.card import public_name

    assert public_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert public_name("smollm2-135m-instruct") == "smollm2-135m-instruct"
    assert public_name("/Users/bob/data/train.jsonl") == "train.jsonl"
