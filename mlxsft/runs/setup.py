"""``setup.json`` and ``data_summary.json``: what a run was set up on, written once when training starts.

    atomic_write_json(run_dir / SETUP_FILE, setup_facts(backend, plan, machine_gb, trainable, total, world_size))
    atomic_write_json(run_dir / DATA_SUMMARY_FILE, data_summary(train, valid, cfg, decode))

``setup.json``: the memory plan (what ``train --plan`` prints) to hold against the peak measured in
``metrics.jsonl``, the trainable and total parameter counts, the backend and the device, the machine, and the
versions of the packages that decide the numbers. ``data_summary.json``: the splits as the model saw them
(``mlxsft.data.summary``: lengths, a histogram, supervision, padding, a few rows as tokens). Both are facts
for the report page (``mlxsft/report``), read back with ``read.read_json``; runs from before they existed lack
them and the page says so.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from typing import Any, Optional

SETUP_FILE = "setup.json"
DATA_SUMMARY_FILE = "data_summary.json"
PACKAGES = ("mlxsft", "mlx", "mlx-lm", "torch", "peft", "transformers", "tokenizers", "safetensors", "numpy")
HISTOGRAM_BINS = 32  # finer than `data stats`' ten: the page has room for it


def package_versions() -> dict[str, Optional[str]]:
    """The installed version of each of ``PACKAGES`` (None when missing), read from the metadata: no import."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Optional[str]] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def describe_device(backend: Any) -> str:
    """"cuda:0 (NVIDIA H200)", "cpu (Intel Xeon ...)", "gpu (Apple M3)": where the run's tensors lived."""
    from mlxsft.doctor import _chip

    plan = getattr(backend, "device", None)  # torch's DevicePlan; MLX runs on its default device
    kind = str(plan.device) if plan is not None and hasattr(plan, "device") else \
        ("gpu" if backend.on_gpu() else "cpu")
    if kind.startswith("cuda"):
        import torch

        return f"{kind} ({torch.cuda.get_device_name(plan.device)})"
    return f"{kind} ({_chip()})"


def setup_facts(backend: Any, plan: Any, machine_gb: float, trainable: int, total: int,
                world_size: int = 1) -> dict[str, Any]:
    memory = dataclasses.asdict(plan) if dataclasses.is_dataclass(plan) else {}
    return {
        "backend": backend.name,
        "device": describe_device(backend),
        "processes": world_size,
        "memory_plan": {**memory, "total_gb": plan.total_gb},
        "machine_memory_gb": machine_gb,
        "parameters": {"trainable": int(trainable), "total": int(total)},
        "machine": {"system": f"{platform.system()} {platform.release()} ({platform.machine()})",
                    "python": platform.python_version(), "cores": os.cpu_count()},
        "versions": package_versions(),
    }


def data_summary(train: Any, valid: Any, cfg: Any, decode: Any) -> dict[str, Any]:
    """The prepared splits as the report shows them; ``cfg`` is the run's Config (batch size, packing)."""
    from mlxsft.data.summary import describe_split, sample_rows

    def one(split: Any) -> dict[str, Any]:
        return {**describe_split(split, cfg.train.batch_size, bins=HISTOGRAM_BINS), "samples": sample_rows(split, decode)}

    return {"pack": cfg.data.pack, "train": one(train), "valid": one(valid) if valid is not None else None}
