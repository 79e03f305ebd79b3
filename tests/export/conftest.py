"""Tiny trained runs to export (both backends, llama and gemma3), and the reference logits they must match.

Each run trains 2 steps at a high learning rate on the 8-row memorisation set, so its adapters move the
logits by whole units (``assert_adapter_matters``): a fused-vs-adapter comparison can then fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import write_data
from tests.tiny import tiny_hf_model

# "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n" in the SmolLM2 tokenizer, 16 tokens: within
# the tiny gemma3's sliding window (16), where mlx-lm's and transformers' Gemma 3 agree exactly
IDS = [1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 2, 198, 1, 520, 9531, 198]


def train_run(model: Path | str, data: Path | None, out: Path, **over: Any) -> Path:
    """``data=None``: the bundled dataset."""
    from mlxsft.config import load_config
    from mlxsft.train import run_training

    cfg = dict(model=str(model), data=str(data) if data else None, out=str(out), compare=False, iters=2, batch_size=4,
               learning_rate=5e-2, warmup=0, eval_every=0, save_every=0, report_every=1, max_seq_len=64,
               lr_schedule="constant", seed=0, num_layers=-1, backend="mlx")
    cfg.update(over)
    run_training(load_config(None, cfg))
    return out


@pytest.fixture(scope="session")
def export_data(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("export-data"))


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory, smol_tokenizer_dir) -> Path:
    return tiny_hf_model(tmp_path_factory.mktemp("tiny-gemma3"), "gemma3", smol_tokenizer_dir)


@pytest.fixture(scope="session")
def mlx_llama_run(tmp_path_factory, tiny_llama_dir, export_data) -> Path:
    return train_run(tiny_llama_dir, export_data, tmp_path_factory.mktemp("runs") / "mlx-llama")


@pytest.fixture(scope="session")
def mlx_gemma3_run(tmp_path_factory, tiny_gemma3_dir, export_data) -> Path:
    return train_run(tiny_gemma3_dir, export_data, tmp_path_factory.mktemp("runs") / "mlx-gemma3")


@pytest.fixture(scope="session")
def mlx_qwen2_run(tmp_path_factory, smol_tokenizer_dir, export_data) -> Path:
    model = tiny_hf_model(tmp_path_factory.mktemp("tiny-qwen2"), "qwen2", smol_tokenizer_dir)
    return train_run(model, export_data, tmp_path_factory.mktemp("runs") / "mlx-qwen2")


@pytest.fixture(scope="session")
def torch_llama_run(tmp_path_factory, tiny_llama_dir, export_data) -> Path:
    pytest.importorskip("peft")
    return train_run(tiny_llama_dir, export_data, tmp_path_factory.mktemp("runs") / "torch-llama",
                     backend="torch", learning_rate=2e-2)


# ----------------------------------------------------------------------------- reference logits
def mlx_logits(run: Path, ids: list[int] = IDS, *, adapters: bool = True) -> np.ndarray:
    """The run's model as chat/eval use it: its base with the adapters loaded, not fused."""
    import mlx.core as mx
    from mlx_lm.utils import load_adapters

    from mlxsft.runs.read import RunFolder
    from mlxsft.models import load_mlx

    info = RunFolder.open(run)
    model, _, _ = load_mlx(info.base_model, **{k: v for k, v in info.load_kwargs.items() if v is not None})
    if adapters:
        load_adapters(model, str(run))
    model.eval()
    return np.array(model(mx.array([ids]))[0].astype(mx.float32))


def torch_logits(run: Path, ids: list[int] = IDS, *, adapters: bool = True) -> np.ndarray:
    """The torch run's model: its base with the PEFT adapter on top, not merged."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from mlxsft.runs.read import RunFolder

    model = AutoModelForCausalLM.from_pretrained(RunFolder.open(run).base_model, dtype=torch.float32)
    if adapters:
        model = PeftModel.from_pretrained(model, str(run))
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def hf_logits(folder: Path, ids: list[int] = IDS, **load: Any) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, **load)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def assert_adapter_matters(tuned: np.ndarray, base: np.ndarray) -> None:
    """Otherwise a fused model equal to the base would pass every comparison."""
    assert np.abs(tuned - base).max() > 1.0, np.abs(tuned - base).max()
