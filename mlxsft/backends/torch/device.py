"""Where and in which precision the torch backend runs: ``auto | cuda | mps | cpu``.

    plan = pick_device("auto", requested_dtype="float32")   # DevicePlan(device, param_dtype, autocast_dtype, notes)

Rules (issue 6):
- CPU: fp32 weights and compute, whatever was asked (half precision on CPU is slow and lossy).
- CUDA: weights in the requested dtype; fp32 weights train under bf16 autocast where the GPU supports
  bf16 (fp32 master weights, no loss scaling needed). No bf16 -> plain fp32, never unscaled fp16.
- MPS: bf16 is *probed*, not assumed (it needs macOS 14+, and older torch builds lack it); an unsupported
  request falls back to fp32 with a note. ``PYTORCH_ENABLE_MPS_FALLBACK=1`` is set (with a note) so ops
  missing on Metal run on the CPU instead of failing; it must be set before torch initialises MPS.

The notes are plain strings the caller reports through the ``message`` event; nothing here prints.
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass, field
from typing import Any

from mlxsft.errors import ConfigError

DEVICES = ("auto", "cuda", "mps", "cpu")
MPS_FALLBACK_ENV = "PYTORCH_ENABLE_MPS_FALLBACK"


@dataclass
class DevicePlan:
    device: Any  # torch.device
    param_dtype: Any  # torch.dtype of the weights
    autocast_dtype: Any = None  # torch.dtype for torch.autocast, or None for no autocast
    notes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.device.type


def _dtype(name: str) -> Any:
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name not in table:
        raise ConfigError(f"dtype: {name!r} is not one of {', '.join(table)}")
    return table[name]


def enable_mps_fallback() -> str | None:
    """Set PYTORCH_ENABLE_MPS_FALLBACK=1 unless the user chose a value; returns the note to report."""
    if MPS_FALLBACK_ENV in os.environ:
        return None
    os.environ[MPS_FALLBACK_ENV] = "1"
    return (f"{MPS_FALLBACK_ENV}=1: ops missing on MPS run on the CPU (slower, correct); "
            f"set {MPS_FALLBACK_ENV}=0 to make them fail instead")


def mps_supports(dtype: Any) -> bool:
    """Whether this Mac's MPS can run a matmul in ``dtype`` (bf16 needs macOS 14+)."""
    import torch

    try:
        a = torch.ones(2, 2, device="mps", dtype=dtype)
        (a @ a).sum().item()
        return True
    except (RuntimeError, TypeError):
        return False


def cuda_bf16_supported() -> bool:
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported())
    except (RuntimeError, AssertionError):
        return False


def preloaded_blas_note() -> str | None:
    """A warning when OpenBLAS is preloaded (the MLX-on-Linux fix): it then also serves torch's BLAS calls,
    and torch CPU training ran 10x slower than on torch's own MKL (SmolLM2-135M LoRA: 35 vs 352 tokens/s
    on a 2-core x86_64 box; issue 6)."""
    from mlxsft.machine import NO_REEXEC_ENV, blas_preloaded

    lib = blas_preloaded()
    if not lib:
        return None
    return (f"OpenBLAS is preloaded ({lib}); it makes torch on the CPU up to 10x slower, run without LD_PRELOAD "
            f"(and {NO_REEXEC_ENV}=1 for the mlxsft command) for torch's own BLAS")


def available_device() -> str:
    """cuda, then mps, then cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_device(choice: str = "auto", requested_dtype: str = "float32") -> DevicePlan:
    """Resolve ``--device`` and ``--dtype`` into a DevicePlan (raises ConfigError for an absent device)."""
    if choice not in DEVICES:
        raise ConfigError(f"device: {choice!r} is not one of {', '.join(DEVICES)}")
    notes: list[str] = []
    if choice in ("auto", "mps") and sys.platform == "darwin":
        note = enable_mps_fallback()  # before the first MPS op
        if note:
            notes.append(note)
    import torch

    kind = available_device() if choice == "auto" else choice
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: no CUDA GPU visible to torch", hint="use --device cpu or auto")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device mps: MPS is not available (needs Apple Silicon and a torch build with MPS)",
                          hint="use --device cpu or auto")
    want = _dtype(requested_dtype)
    plan = DevicePlan(device=torch.device(kind), param_dtype=want, notes=notes)
    if kind == "cpu":
        if want != torch.float32:
            notes.append(f"dtype {requested_dtype} -> float32 on the CPU")
        plan.param_dtype = torch.float32
        note = preloaded_blas_note()
        if note:
            notes.append(note)
    elif kind == "cuda":
        if want == torch.bfloat16 and not cuda_bf16_supported():
            notes.append("dtype bfloat16 is not supported by this GPU -> float32")
            plan.param_dtype = torch.float32
        if plan.param_dtype == torch.float32 and cuda_bf16_supported():
            plan.autocast_dtype = torch.bfloat16
            notes.append("cuda: float32 weights, bfloat16 autocast")
    elif kind == "mps" and want != torch.float32 and not mps_supports(want):
        notes.append(f"dtype {requested_dtype} is not supported by MPS on this Mac -> float32")
        plan.param_dtype = torch.float32
    return plan


def autocast(plan: DevicePlan) -> Any:
    """A context manager: torch.autocast for the plan, or a no-op."""
    import contextlib

    import torch

    if plan.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=plan.kind, dtype=plan.autocast_dtype)


def reset_peak_memory(plan: DevicePlan) -> None:
    import torch

    if plan.kind == "cuda":
        torch.cuda.reset_peak_memory_stats(plan.device)


def peak_memory_gb(plan: DevicePlan) -> float:
    """Peak accelerator memory where torch tracks it; the process's peak RSS otherwise (as MLX on CPU)."""
    import torch

    if plan.kind == "cuda":
        return torch.cuda.max_memory_allocated(plan.device) / 1e9
    if plan.kind == "mps":
        try:
            return torch.mps.driver_allocated_memory() / 1e9  # current, MPS has no peak counter
        except (AttributeError, RuntimeError):
            pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1e9 if sys.platform == "darwin" else rss / 1e6  # bytes on macOS, KiB on Linux


def device_memory_bytes(plan: DevicePlan) -> int:
    """Memory the run can use: the GPU's on CUDA, the machine's otherwise (MPS shares RAM)."""
    import torch

    if plan.kind == "cuda":
        return int(torch.cuda.get_device_properties(plan.device).total_memory)
    from mlxsft.machine import total_memory_bytes

    return total_memory_bytes()
