"""Run folders and curation reports for the report tests, written without training: every file as training
and curation write it (config.yaml, metrics.jsonl, compare.json, setup.json, data_summary.json, reports).

    fake_run(tmp_path / "a", steps=40)             # an MLX LoRA run with every file the page reads
    fake_run(tmp_path / "old", facts=False, compare=False)   # a run from before the report's files
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mlxsft.backends.generation import Answer
from mlxsft.curate.filtering import FilterReport
from mlxsft.curate.stats import summarize
from mlxsft.evaluate import Question, compare

HOSTILE = "<script>alert('x')</script>"  # in a row, an answer and a config value: it must show as text

# (question, reference, category, base answer, tuned answer): 3 wins, 1 regression, 2 unchanged, 1 open
QUESTIONS = [
    ("Year in: Tom moved in 1999.", "1999", "extract", "maybe 2001", "1999"),  # win
    ("Name in: Ann came.", "Ann", "extract", "Ann", "Anne"),  # regression
    ("Plural of box?", "boxes", "rewrite", "box box", "boxes"),  # win
    ("Plural of cat?", "cats", "rewrite", "cat", "cat"),  # unchanged wrong
    ("Capital of Peru?", "Lima", "knowledge", "Lima", "Lima"),  # unchanged right
    (f"Repeat {HOSTILE}", HOSTILE, "rewrite", "no", HOSTILE),  # win, and every cell hostile
    ("Tell me about tea.", None, "open", "Tea tea", "Tea is a drink."),  # open
]
COUNTS = {"win": 3, "regression": 1, "unchanged": 2, "open": 1}


def _answers(column: int):
    table = {row[0]: row[column] for row in QUESTIONS}

    def answer(messages: list[dict]) -> Answer:
        text = table[messages[-1]["content"]]
        return Answer(text=text, tokens=len(text.split()), tokens_per_sec=1.0, finish_reason="stop")
    return answer


def compare_json() -> dict[str, Any]:
    from mlxsft.learned import Forgetting

    questions = [Question(messages=[{"role": "user", "content": q}], reference=ref, category=cat)
                 for q, ref, cat, *_ in QUESTIONS]
    report = compare({"base": _answers(3), "tuned": _answers(4)}, questions)
    report.forgetting = Forgetting(kl=0.125, tuned_nll=1.5, base_nll=1.25, prompts=16, tokens=512)
    return report.to_dict()


def metrics(steps: int, every: int = 1, eval_every: int = 10, seed: float = 0.0) -> list[dict[str, Any]]:
    rows = []
    for step in range(every, steps + 1, every):
        loss = 3.0 * math.exp(-step / (steps / 3)) + 0.5 + 0.05 * math.sin(step + seed)
        rows.append({"step": step, "epoch": step / steps, "train_loss": loss, "val_loss": None,
                     "learning_rate": 1e-3 * (1 - step / (steps + 1)), "grad_norm": 1.0 + 0.3 * math.cos(step),
                     "tokens_per_sec": 120.0 + 5 * math.sin(step / 7), "trained_tokens": 300 * step,
                     "peak_memory_gb": 1.5 + 0.1 * (step > steps / 2), "elapsed_s": step * 0.5,
                     "total_steps": steps})
        if eval_every and step % eval_every == 0:
            rows.append({"step": step, "val_loss": loss + 0.2, "trained_tokens": 300 * step, "total_steps": steps})
    return rows


def data_summary() -> dict[str, Any]:
    pieces = ["<|im_start|>", "user", "\n", "Say ", HOSTILE, "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n",
              "Hi", " there", "<|im_end|>"]
    mask = [0] * 10 + [1, 1, 1]
    train = {"rows_in": 10, "rows": 8, "truncated": 1, "dropped_overlong": 1, "no_supervised_rows": 1,
             "invalid_rows": 0, "supervised_tokens": 80, "total_tokens": 400, "supervised_fraction": 0.2,
             "assistant_turns": 9, "multi_turn_rows": 1, "max_seq_len": 64, "train_on": "assistant",
             "split": "train", "source": "data/", "length": {"min": 20, "median": 48.0, "p95": 64.0, "max": 64,
                                                              "mean": 50.0},
             "histogram": [[0, 16, 0], [16, 32, 2], [32, 48, 3], [48, 64, 3]], "batch_size": 4,
             "padding": {"unpacked": {"padding_fraction": 0.1, "batches": 2},
                         "packed": {"padding_fraction": 0.02, "batches": 7}},
             "samples": [{"row": 0, "pieces": pieces, "mask": mask}]}
    valid = {**train, "rows_in": 4, "rows": 4, "samples": []}
    return {"pack": False, "train": train, "valid": valid}


def setup_json() -> dict[str, Any]:
    return {"backend": "mlx", "device": "cpu (test chip)", "processes": 1,
            "memory_plan": {"weights_gb": 0.5, "trainable_gb": 0.1, "activations_gb": 0.6, "logits_gb": 0.2,
                            "runtime_gb": 0.0, "total_gb": 1.4},
            "machine_memory_gb": 16.0, "parameters": {"trainable": 1000, "total": 100000},
            "machine": {"system": "Linux", "python": "3.11", "cores": 2}, "versions": {"mlxsft": "0.1.0"}}


def fake_run(folder: Path, steps: int = 40, *, every: int = 1, facts: bool = True, compare: bool = True,
             weights: bool = True, seed: float = 0.0, name: str = HOSTILE) -> Path:
    """A run folder as training leaves it; ``name`` (train.name in config.yaml) is hostile by default."""
    from mlxsft.config import load_config

    folder.mkdir(parents=True)
    load_config(None, {"model": "tiny-model", "name": name, "report_every": every, "max_seq_len": 64}).save(
        folder / "config.yaml")
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics(steps, every, seed=seed)))
    if weights:
        (folder / "adapter_config.json").write_text(json.dumps({"fine_tune_type": "lora"}))
        (folder / "adapters.safetensors").write_bytes(b"")  # only its presence is read
    if compare:
        (folder / "compare.json").write_text(json.dumps(compare_json()))
    if facts:
        (folder / "setup.json").write_text(json.dumps(setup_json()))
        (folder / "data_summary.json").write_text(json.dumps(data_summary()))
    return folder


def filter_report(path: Path) -> Path:
    report = FilterReport(input="big.jsonl", output=HOSTILE + ".jsonl", rows_in=1000, rows_out=640)
    report.removed.update({"invalid": 10, "too_short": 50, "exact_dup": 100, "near_dup": 200})
    path.write_text(json.dumps(report.to_dict()))
    return path


def best_of_k_report(path: Path, best: list[float] = (1.0, 1.0, 0.5, 0.0, 1.0)) -> Path:
    every = [1.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0, 1.0, 0.0, 0.0]
    path.write_text(json.dumps({"out": "best.jsonl", "rejected_file": "best.rejected.jsonl", "model": "tiny",
                                "scorer": "reference", "k": 2, "threshold": 1.0, "prompts": 5, "accepted": 3,
                                "rejected": 2, "acceptance_rate": 0.6, "resumed": 0, "failed": 0, "duplicates": 0,
                                "best_scores": summarize(best).to_dict(),
                                "candidate_scores": summarize(every).to_dict(),
                                "tokens": 120, "elapsed_s": 3.0, "retries": 0}))
    return path
