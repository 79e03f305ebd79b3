"""Run ``mlxsft`` commands as real, killable processes without paying Python's import cost each time.

    run = start_cli(["train", "--model", model, ...], workdir)    # a separate process running cli.main
    for line in run.lines():                                     # its stdout, as it is written
        if line.startswith("step 3/"):
            run.kill()                                           # SIGKILL: nothing runs after it
    code = run.wait()                                            # -9
    code, out, err = run_cli(["data", "validate", "bad.jsonl"], workdir)

A ``mlxsft`` process spends ~8 s importing mlx-lm, transformers and torch on a small CPU box before it
trains a tiny model for a second; a kill-and-resume loop of 20+ runs would spend minutes on imports.
So processes come from a multiprocessing *forkserver*: a fresh interpreter that imports those modules
once (never running MLX or torch code, so forking it is safe) and forks one child per command. Each
child is an ordinary process with its own pid, stdout and stderr files and exit status; it runs the
same ``mlxsft.cli.main.main`` as the installed ``mlxsft`` command (the OpenBLAS re-exec is off, as the
caller already preloads it), and a SIGKILL ends it exactly as it would end ``mlxsft``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

PRELOAD = [
    "mlxsft.cli.main", "mlxsft.cli.train", "mlxsft.cli.data", "mlxsft.cli.ui.train", "mlxsft.cli.ui.data",
    "mlxsft.train", "mlxsft.data", "mlxsft.models", "mlxsft.plot",
    "mlx.core", "mlx.nn", "mlx.optimizers", "mlx_lm.utils", "mlx_lm.tokenizer_utils", "mlx_lm.models.llama",
    "mlxsft.backends.mlx.trainer", "mlxsft.backends.mlx.backend",
    "transformers", "mlxsft.backends.torch.trainer", "mlxsft.backends.torch.backend", "peft",
    "matplotlib.pyplot",
]

_ctx: Optional[multiprocessing.context.BaseContext] = None


def _context() -> multiprocessing.context.BaseContext:
    global _ctx
    if _ctx is None:
        _ctx = multiprocessing.get_context("forkserver")
        _ctx.set_forkserver_preload(PRELOAD)  # modules that fail to import are skipped by multiprocessing
    return _ctx


def child_env(extra: Optional[dict] = None) -> dict:
    env = dict(os.environ, MLXSFT_NO_BLAS_REEXEC="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def _child(argv: list[str], env: dict, cwd: str, out_path: str, err_path: str) -> None:
    """The forked process: stdout/stderr to files, then exactly what the ``mlxsft`` entry point does."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, path in ((1, out_path), (2, err_path)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    # the forkserver's own signal settings must not leak in: a real `mlxsft` takes Ctrl-C as KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:  # tqdm's default lock is a multiprocessing semaphore, which a SIGKILLed child never unregisters
        import threading

        import tqdm

        tqdm.tqdm.set_lock(threading.RLock())
    except ImportError:
        pass
    code = 0
    try:
        from mlxsft.cli.main import main

        main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # an uncaught exception: print it as Python would, exit 1
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@dataclass
class CliRun:
    """One running ``mlxsft`` command."""

    process: multiprocessing.process.BaseProcess
    out_path: Path
    err_path: Path
    started: float = field(default_factory=time.perf_counter)

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def alive(self) -> bool:
        return self.process.is_alive()

    def lines(self, timeout: float = 600.0, poll: float = 0.002) -> Iterator[str]:
        """Each stdout line as soon as it is complete, until the process exits (or ``timeout``)."""
        deadline = time.perf_counter() + timeout
        pos, buf = 0, b""
        while True:
            running = self.alive()
            with open(self.out_path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
            pos += len(chunk)
            buf += chunk
            *done, buf = buf.split(b"\n")
            for raw in done:
                yield raw.decode("utf-8", "replace")
            if not running:
                if buf:
                    yield buf.decode("utf-8", "replace")
                return
            if time.perf_counter() > deadline:
                self.kill()
                raise TimeoutError(f"mlxsft did not finish in {timeout:.0f}s")
            time.sleep(poll)

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def wait(self, timeout: float = 600.0) -> int:
        """The exit status: the exit code, or minus the signal that ended it (-9 for SIGKILL)."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.kill()
            self.process.join(30)
            raise TimeoutError(f"mlxsft did not exit in {timeout:.0f}s")
        return int(self.process.exitcode)

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")


def start_cli(argv: list[str], workdir: Path, env: Optional[dict] = None, name: str = "run") -> CliRun:
    """Start ``mlxsft ARGV`` as a separate process; its output goes to ``workdir/.logs/NAME-N.{out,err}``."""
    logs = Path(workdir) / ".logs"
    logs.mkdir(parents=True, exist_ok=True)
    n = len(list(logs.glob(f"{name}-*.out")))
    out, err = logs / f"{name}-{n}.out", logs / f"{name}-{n}.err"
    out.touch()
    proc = _context().Process(target=_child, args=(list(argv), child_env(env), str(workdir), str(out), str(err)),
                              daemon=True)
    proc.start()
    return CliRun(proc, out, err)


def run_cli(argv: list[str], workdir: Path, env: Optional[dict] = None,
            timeout: float = 600.0) -> tuple[int, str, str]:
    """``mlxsft ARGV`` to completion: (exit status, stdout, stderr)."""
    run = start_cli(argv, workdir, env)
    code = run.wait(timeout)
    return code, run.stdout(), run.stderr()
