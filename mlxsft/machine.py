"""Machine facts used by several commands: OS, chip, memory, and the BLAS that MLX runs on.

On Linux the ``mlx[cpu]`` wheel bundles the reference BLAS (measured: ~5 GFLOP/s for a
1024x1024 fp32 matmul on a 2-core x86_64 box, against ~300 GFLOP/s with Debian's OpenBLAS).
``ensure_fast_blas()`` re-executes the current command once with OpenBLAS preloaded when it is
installed, so ``mlxsft ...`` is fast without the user knowing about ``LD_PRELOAD``; the backend registry
decides when (``mlxsft/backends/registry.py``: only for commands that run MLX, once their config is read).
(This module was ``platform.py``; it is ``machine.py`` so it no longer shadows the standard library's.)
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# Debian/Ubuntu (libopenblas0-pthread), then other common layouts.
OPENBLAS_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
)
NO_REEXEC_ENV = "MLXSFT_NO_BLAS_REEXEC"


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def find_openblas() -> str | None:
    override = os.environ.get("MLXSFT_OPENBLAS")
    for cand in ((override,) if override else ()) + OPENBLAS_CANDIDATES:
        if cand and Path(cand).is_file():
            return cand
    return None


def blas_preloaded() -> str | None:
    """The OpenBLAS library preloaded into this process, if any."""
    for part in os.environ.get("LD_PRELOAD", "").replace(":", " ").split():
        if "blas" in part.lower() and Path(part).exists():
            return part
    return None


def ensure_fast_blas(argv: list[str] | None = None) -> None:
    """On Linux, re-exec once with OpenBLAS preloaded if it exists and is not loaded yet.

    Called by ``mlxsft.backends.registry.choose_blas`` once the command knows it will run MLX (never for
    torch: a preloaded OpenBLAS slows torch's own kernels ~10x, measured on SmolLM2 LoRA steps).
    """
    if not sys.platform.startswith("linux") or os.environ.get(NO_REEXEC_ENV) or blas_preloaded():
        return
    argv = argv if argv is not None else sys.argv
    lib = find_openblas()
    if lib is None:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = (lib + " " + env.get("LD_PRELOAD", "")).strip()
    env[NO_REEXEC_ENV] = "1"  # never loop
    env["PYTHONSAFEPATH"] = "1"  # `python -m` would put the current folder first on sys.path: a stray click.py ran
    try:
        os.execve(sys.executable, [sys.executable, *_self_command(argv)], env)
    except OSError:
        return  # keep running on the slow BLAS rather than fail


def _self_command(argv: list[str]) -> list[str]:
    # the console script and `python -m mlxsft` both re-enter through the package's __main__; -P (3.11+, and
    # PYTHONSAFEPATH in the env) keeps the current folder off sys.path, so no file there shadows a dependency
    if sys.version_info >= (3, 11):
        return ["-P", "-m", "mlxsft", *argv[1:]]
    return ["-c", _SAFE_MAIN, *argv[1:]]


# Python 3.10 has no -P: drop the current folder that -c puts first on sys.path, then run mlxsft's __main__
_SAFE_MAIN = ("import sys, runpy; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
              "sys.argv[0] = 'mlxsft'; runpy.run_module('mlxsft', run_name='__main__', alter_sys=True)")


def total_memory_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return 0


def available_memory_bytes() -> int | None:
    """Memory the system can give this process without swapping; None where it cannot be told."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil is optional
        pass
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU as benchmark records name it: "AMD EPYC (family 25 model 17, avx512)". Machines sold under
    one model name differ (the same "AMD EPYC" ran a Gemma 3 LoRA step at 4.1 s one day and 2.2 s another),
    so a record carries the family, model and widest vector unit /proc/cpuinfo reports."""
    fields: dict[str, str] = {}
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "flags") and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break  # the first processor is enough
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "cpu"
    flags = set(fields.get("flags", "").split())
    details = [f"family {fields['cpu family']} model {fields['model']}"] if "cpu family" in fields else []
    details += [unit for flag, unit in (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx")) if flag in flags][:1]
    return f"{name} ({', '.join(details)})" if details else name


def mlx_blas() -> str:
    """Which BLAS MLX's CPU path uses in this process."""
    if sys.platform == "darwin":
        return "Accelerate"
    lib = blas_preloaded()
    return f"OpenBLAS ({lib})" if lib else "reference BLAS bundled with mlx[cpu] (slow; install libopenblas0-pthread)"
