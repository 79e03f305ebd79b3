"""Atomic checkpoints and run-folder weights for torch runs.

Layout (the same folders as MLX runs)::

    checkpoints/step-00000040/{trainable.safetensors, optimizer.pt, state.json}
    checkpoints/latest                       # text: the name of the newest complete checkpoint
    adapter_config.json, adapter_model.safetensors   # LoRA/DoRA: PEFT's format (PeftModel.from_pretrained)
    trainable.safetensors                    # full fine-tuning: the tuned tensors, HF parameter names
    best/                                    # the same files for the best validation loss

A checkpoint folder is written as ``.tmp-step-…`` and renamed when complete; ``latest`` is replaced
atomically afterwards, so a kill at any moment leaves the previous checkpoint loadable. ``optimizer.pt``
holds the optimizer and scheduler states and torch's RNG states (dropout), so a resume continues exactly.
"""

from __future__ import annotations

import json
import os

import tempfile
from pathlib import Path
from typing import Any

from mlxsft.errors import RunError
from mlxsft.runs import write_checkpoint

TRAINABLE = "trainable.safetensors"
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def save_tensors(path: Path, tensors: dict[str, Any]) -> None:
    """safetensors, written to a temporary name and renamed into place."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.safetensors")
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp))
    _fsync(tmp)
    os.replace(tmp, path)


def rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


def save_checkpoint(run_dir: Path, step: int, weights: dict[str, Any], optimizer_state: dict[str, Any],
                    scheduler: Any, state: dict[str, Any]) -> Path:
    """``optimizer_state``: ``optimizer.state_dict()`` (gathered to full tensors when FSDP sharded it)."""
    import torch

    def write(tmp: Path) -> None:
        save_tensors(tmp / TRAINABLE, weights)
        torch.save({"optimizer": optimizer_state, "scheduler": scheduler.state_dict(), "rng": rng_state()},
                   tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2))

    # the checkpoint (weights, then about twice that for Adam's moments), then the weights again (write_model_files)
    weight_bytes = sum(v.numel() * v.element_size() for v in weights.values())
    return write_checkpoint(run_dir, step, write, need_bytes=4 * weight_bytes)


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(trainable tensors, {optimizer, scheduler, rng}, loop state)."""
    import torch
    from safetensors.torch import load_file

    try:
        weights = load_file(str(path / TRAINABLE))
        opt = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
        state = json.loads((path / "state.json").read_text())
    except Exception as e:  # corrupt or truncated files
        raise RunError(f"{path}: cannot read checkpoint ({e})") from None
    return weights, opt, state


def write_model_files(folder: Path, model: Any, weights: dict[str, Any]) -> None:
    """What a user loads: PEFT adapter files for LoRA/DoRA, ``trainable.safetensors`` for full FT.

    PEFT's own ``save_pretrained`` writes into a scratch folder next to the target and each file is
    renamed into place, so readers never see a half-written adapter.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not hasattr(model, "peft_config"):
        save_tensors(folder / TRAINABLE, weights)
        return
    with tempfile.TemporaryDirectory(dir=folder, prefix=".peft-") as tmp:
        model.save_pretrained(tmp)  # adapter_config.json + adapter_model.safetensors (+ a README we skip)
        for name in PEFT_FILES:
            _fsync(Path(tmp) / name)
            os.replace(Path(tmp) / name, folder / name)


def load_full_weights(model: Any, folder: Path) -> None:
    """Load a full fine-tuning run's tuned tensors into the base model."""
    from safetensors.torch import load_file

    path = Path(folder) / TRAINABLE
    if not path.is_file():
        raise RunError(f"{folder}: no {TRAINABLE}")
    tuned = load_file(str(path))
    missing = set(tuned) - {n for n, _ in model.named_parameters()}
    if missing:
        raise RunError(f"{path}: weights not in this model ({sorted(missing)[:3]} ...)")
    model.load_state_dict(tuned, strict=False)
