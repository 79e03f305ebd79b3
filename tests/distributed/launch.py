"""Start ``mlxsft train`` on several local processes the way users do: ``mlx.launch`` (ring backend on
loopback) and ``torchrun --standalone`` (gloo on the CPU).

    r = mlx_launch(["train", "--model", ...], per_rank=("--out", tmp / "run-"))   # rank r: --out run-<r>
    r = torchrun(["train", "--backend", "torch", "--resume", str(run)])
    assert_ok(r)

``per_rank`` gives each rank its own folder (``--out`` or ``--resume`` ``<prefix><rank>``), so a test can see
that ranks > 0 never create or change theirs. Every process gets one BLAS/OpenMP thread: the ranks share
the CI cores.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

TIMEOUT_S = 300


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.is_file() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


def free_ports(n: int) -> int:
    """A port p such that p .. p+n-1 are free now (the ring backend listens on consecutive ports)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n <= 65535 and all(_free(p) for p in range(base + 1, base + n)):
            return base
    raise RuntimeError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    # mlx.launch forwards its stdin to every rank and polls it: give it a pipe that stays open and silent
    # (/dev/null would be "readable" at every poll and spin a core)
    quiet, keep_open = os.pipe()
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, stdin=quiet)
    finally:
        os.close(quiet)
        os.close(keep_open)


def _env(torch_only: bool) -> dict[str, str]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MLX_RANK", "MLX_HOSTFILE"):  # a clean launch
        env.pop(key, None)
    if torch_only:
        env.pop("LD_PRELOAD", None)  # OpenBLAS preloaded into torch makes it ~10x slower
    return env


PerRank = Optional[tuple[str, Path]]


def _per_rank(cmd: list[str], per_rank: PerRank, rank_var: str) -> list[str]:
    if per_rank is None:
        return cmd
    flag, prefix = per_rank
    # bash expands the rank the launcher exported, then becomes the command (exec keeps the pid)
    return ["bash", "-c", f'exec "$@" {flag} "{prefix}${rank_var}"', "bash", *cmd]


def mlx_launch(args: list[str], n: int = 2, per_rank: PerRank = None) -> subprocess.CompletedProcess:
    """``mlx.launch ... -- python -m mlxsft ARGS`` (the same as the ``mlxsft`` command)."""
    return mlx_launch_command(_per_rank([sys.executable, "-m", "mlxsft", *args], per_rank, "MLX_RANK"), n)


def mlx_launch_command(command: list[str], n: int = 2) -> subprocess.CompletedProcess:
    cmd = [tool("mlx.launch"), "--hosts", "127.0.0.1", "-n", str(n), "--backend", "ring",
           "--starting-port", str(free_ports(n)), "--", *command]
    return _run(cmd, _env(False))


def torchrun(args: list[str], n: int = 2, per_rank: PerRank = None) -> subprocess.CompletedProcess:
    base = [tool("torchrun"), "--standalone", "--nproc-per-node", str(n)]
    if per_rank is None:
        cmd = [*base, "-m", "mlxsft", *args]
    else:
        cmd = [*base, "--no-python", *_per_rank([sys.executable, "-m", "mlxsft", *args], per_rank, "RANK")]
    return _run(cmd, _env(True))


def assert_ok(r: subprocess.CompletedProcess) -> None:
    """Every rank exited 0 (``mlx.launch`` itself exits 0 even when a rank failed; it only warns)."""
    assert r.returncode == 0 and "exited with code" not in r.stderr, r.stderr[-3000:]


def copies_per_rank(run: Path, prefix: Path, n: int = 2) -> dict[str, tuple[int, int]]:
    """Copy a run folder to ``<prefix><rank>`` for each rank; returns the snapshot of rank 1's copy."""
    for rank in range(n):
        shutil.copytree(run, f"{prefix}{rank}")
    return snapshot(Path(f"{prefix}1"))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under a folder with its size and modification time: changes if anything is written."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def cli_flags(options: dict) -> list[str]:
    """``{"batch_size": 4, "compare": False}`` -> ``["--batch-size", "4", "--no-compare"]``."""
    out: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            out += [flag, str(value)]
    return out
