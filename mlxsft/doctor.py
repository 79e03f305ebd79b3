"""What this machine offers mlxsft, and which backend ``--backend auto`` picks (used by ``mlxsft doctor``).

    from mlxsft.doctor import collect, pick_backend
    backend, reason = pick_backend()     # ("mlx", "Apple Silicon: ...")
    for section in collect(): ...        # rendered by mlxsft.cli.ui.models.print_doctor

Only facts, no printing. Every probe degrades to a "not installed" / "unknown" value instead of failing,
so the report works on a half-installed machine, which is when it is needed most.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlxsft import machine
from mlxsft.config import TrainConfig

MATMUL_N = 512  # big enough to be BLAS-bound, small enough to time in ~50 ms on the slowest BLAS


@dataclass
class Section:
    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, key: str, value: object) -> None:
        self.rows.append((key, str(value)))


def pick_backend() -> tuple[str, str]:
    """(backend, reason): mlx on Apple Silicon; torch with CUDA; on a CPU, whichever BLAS path is fast."""
    if machine.is_apple_silicon():
        return "mlx", "Apple Silicon: MLX runs on the Metal GPU with unified memory"
    has_mlx = _installed("mlx")
    has_torch = _installed("torch")
    if sys.platform == "darwin":
        return "torch", "Intel Mac: MLX needs Apple Silicon"
    cuda = _cuda_name() if has_torch else None
    if cuda:
        return "torch", f"CUDA GPU available ({cuda}): torch trains on it"
    if not has_mlx:
        return "torch", "mlx is not installed"
    if has_torch and sys.platform.startswith("linux"):
        return "torch", ("CPU only: torch trains faster here than MLX's CPU backend (measured on the 2-core "
                         "build machine, SmolLM2-135M LoRA r8, batch 8x256: torch ~330 tokens/s vs MLX + OpenBLAS "
                         "~140 tokens/s; matmul speed is equal, MLX's non-matmul CPU ops are the gap)")
    if machine.blas_preloaded():
        gflops = matmul_gflops("mlx")
        return "mlx", (f"CPU only; MLX runs on OpenBLAS ({gflops:.0f} GFLOP/s measured, "
                       f"fp32 {MATMUL_N}x{MATMUL_N} matmul)")
    lib = machine.find_openblas()
    if lib:
        return "mlx", f"CPU only; OpenBLAS found at {lib}, which the mlxsft command preloads for MLX"
    return "mlx", "CPU only and torch is not installed (MLX on its slow reference BLAS: install OpenBLAS)"


def matmul_gflops(backend: str, n: int = MATMUL_N, reps: int = 3) -> float:
    """Best-of-``reps`` fp32 matmul throughput of one backend in this process."""
    if backend == "mlx":
        import mlx.core as mx

        a = mx.random.normal((n, n))
        mx.eval(a @ a)  # warm-up: first call allocates and may JIT

        def step() -> None:
            mx.eval(a @ a)
    else:
        import torch

        a = torch.randn(n, n)
        a @ a

        def step() -> None:
            a @ a
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def collect() -> list[Section]:
    return [_platform(), _mlx(), _torch(), _models(), _huggingface(), _backend()]


def _platform() -> Section:
    s = Section("Platform")
    s.add("system", f"{platform.system()} {platform.release()} ({platform.machine()})")
    s.add("python", f"{platform.python_version()} ({sys.executable})")
    s.add("chip", _chip())
    s.add("cores", os.cpu_count() or "unknown")
    mem = machine.total_memory_bytes()
    s.add("memory", f"{mem / 2**30:.1f} GiB" if mem else "unknown")
    return s


def _mlx() -> Section:
    s = Section("MLX")
    if not _installed("mlx"):
        s.add("mlx", "not installed (pip install mlx, or mlx[cpu] on Linux)")
        return s
    import mlx.core as mx

    s.add("version", mx.__version__)
    s.add("mlx-lm", _version("mlx_lm") or "not installed")
    if mx.metal.is_available():
        kind = "Metal GPU"
    elif hasattr(mx, "cuda") and mx.cuda.is_available():
        kind = "CUDA GPU"
    else:
        kind = "CPU"
    info = _mlx_device_info(mx)
    name = info.get("device_name") or info.get("architecture") or ""
    s.add("device", f"{kind} ({mx.default_device()}{', ' + str(name) if name else ''})")
    if info.get("memory_size"):
        s.add("device memory", f"{int(info['memory_size']) / 2**30:.1f} GiB")
    if kind == "CPU":
        s.add("BLAS", machine.mlx_blas())
    return s


def _torch() -> Section:
    s = Section("torch (fallback backend)")
    if not _installed("torch"):
        s.add("torch", "not installed (pip install 'mlxsft[torch]')")
        return s
    import torch

    s.add("version", torch.__version__)
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.insert(0, f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} device(s))")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.insert(0, "mps")
    s.add("devices", ", ".join(devices))
    s.add("peft", _version("peft") or "not installed")
    return s


def _models() -> Section:
    from mlxsft.models.aliases import DEFAULT_ALIAS, EMBEDDED_ALIASES
    from mlxsft.models.cache import cache_root

    s = Section("Embedded models")
    for alias, m in EMBEDDED_ALIASES.items():
        tag = " (default)" if alias == DEFAULT_ALIAS else ""
        state = "installed" if m.installed() else f"missing: {m.pip}"
        s.add(alias + tag, f"{m.name}: {state}")
    s.add("conversion cache", f"{cache_root()} ({_count_entries(cache_root() / 'models')} converted models)")
    return s


def _huggingface() -> Section:
    s = Section("Hugging Face")
    if not _installed("huggingface_hub"):
        s.add("huggingface_hub", "not installed")
        return s
    from huggingface_hub import constants

    s.add("hub cache", constants.HF_HUB_CACHE)
    s.add("offline", "yes (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else "no (downloads allowed)")
    s.add("transformers", _version("transformers") or "not installed")
    return s


def _backend() -> Section:
    backend, reason = pick_backend()
    s = Section("Backend")
    default = TrainConfig().backend
    s.add("default", f"{default} (mlxsft train without --backend)" + (f": {backend} here" if default == "auto" else ""))
    s.add("--backend auto", backend)
    s.add("why", reason)
    return s


def _chip() -> str:
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                 timeout=5)
            return out.stdout.strip() or platform.machine()
        except (OSError, subprocess.SubprocessError):
            return platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mlx_device_info(mx) -> dict:
    try:
        return dict(mx.device_info()) if hasattr(mx, "device_info") else dict(mx.metal.device_info())
    except Exception:  # an optional nicety; older/newer mlx may lack or change it
        return {}


def _cuda_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist.replace("_", "-"))
    except PackageNotFoundError:
        return None


def _count_entries(folder: Path) -> int:
    try:
        return sum(1 for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return 0
