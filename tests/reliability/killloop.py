"""Kill ``mlxsft train`` with SIGKILL at random moments, resume it each time, and check nothing was lost.

    report = kill_loop(model_dir, data_dir, workdir, kills=20, iters=40, backend="mlx")
    assert report.ok, report.failures

One uninterrupted reference run, then the same training started, SIGKILLed and resumed (``--resume``)
until it has been killed ``kills`` times, then allowed to finish. Kills are timed at random in three
ways: during start-up (model load, resume clean-up), anywhere in a step, and a few milliseconds after a
step line, when the checkpoint of that step is being written (every step saves one). After every kill:

- ``checkpoints/latest`` names a complete checkpoint that loads (weights, optimizer, state.json);
- every file with its final name is complete (adapters load, JSON and metrics lines parse);
- temporary files the kill left (``.tmp-step-N``, ``.NAME.tmp-PID``) are counted: each is a kill that
  landed in the middle of a write. ``--resume`` must remove them.

At the end: no temporary file anywhere, every step logged once in metrics.jsonl with the reference's
loss, and the final weights equal the reference's (max |difference| <= ``tolerance``).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from mlxsft.runs import latest_checkpoint, partial_files
from tests.reliability.launcher import CliRun, start_cli

ADAPTERS = {"mlx": "adapters.safetensors", "torch": "adapter_model.safetensors"}


@dataclass
class KillLoopReport:
    backend: str
    kills: int = 0
    kills_mid_write: int = 0  # kills after which a temporary file or folder was found
    kills_damaged: int = 0  # kills after which the checkpoint or a file was unusable (must stay 0)
    kills_before_first_checkpoint: int = 0
    kills_at_startup: int = 0
    runs: int = 0  # processes started, the reference included
    steps: int = 0
    partial_names: list[str] = field(default_factory=list)
    max_weight_diff: float = float("nan")
    max_loss_diff: float = float("nan")
    failures: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    step_s: float = 0.0  # measured on the reference run: one step, and writing one checkpoint
    save_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def train_args(model: Path, data: Path, out: Path, iters: int, backend: str) -> list[str]:
    return ["train", "--model", str(model), "--data", str(data), "--out", str(out), "--backend", backend,
            "--no-compare", "--batch-size", "2", "--learning-rate", "3e-3", "--max-seq-len", "64",
            "--dropout", "0.1",  # LoRA dropout: the RNG stream must resume exactly too
            "--report-every", "1", "--eval-every", "0", "--save-every", "1", "--iters", str(iters)]


def load_adapters(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))


def load_checkpoint_files(ckpt: Path, backend: str) -> int:
    """Load every file of a checkpoint the way a resume does; returns its step (raises if anything is off)."""
    state = json.loads((ckpt / "state.json").read_text())
    if backend == "mlx":
        load_adapters(ckpt / "adapters.safetensors")
        load_adapters(ckpt / "optimizer.safetensors")
        json.loads((ckpt / "adapter_config.json").read_text())
    else:
        import torch

        load_adapters(ckpt / "trainable.safetensors")
        torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
    step = int(state["step"])
    if ckpt.name != f"step-{step:08d}":
        raise ValueError(f"{ckpt.name} holds the state of step {step}")
    return step


def check_run_folder(out: Path, backend: str) -> list[str]:
    """What is wrong with a run folder right after a kill (an empty list when nothing is)."""
    problems = []
    if (out / "checkpoints" / "latest").is_file():
        try:
            load_checkpoint_files(latest_checkpoint(out), backend)
        except Exception as e:  # any failure to load is the finding
            problems.append(f"latest checkpoint does not load: {type(e).__name__}: {e}")
    for name in (ADAPTERS[backend], f"best/{ADAPTERS[backend]}"):
        if (out / name).is_file():
            try:
                load_adapters(out / name)
            except Exception as e:
                problems.append(f"{name} is damaged: {type(e).__name__}: {e}")
    for name in ("adapter_config.json", "best/adapter_config.json"):
        if (out / name).is_file():
            try:
                json.loads((out / name).read_text())
            except ValueError as e:
                problems.append(f"{name} is damaged: {e}")
    if (out / "config.yaml").is_file():
        import yaml

        if not isinstance(yaml.safe_load((out / "config.yaml").read_text()), dict):
            problems.append("config.yaml is damaged")
    if (out / "metrics.jsonl").is_file():
        for i, line in enumerate((out / "metrics.jsonl").read_text().splitlines(), 1):
            try:
                json.loads(line)
            except ValueError:
                problems.append(f"metrics.jsonl:{i} is a partial line: {line[:60]!r}")
    return problems


def _train_rows(out: Path) -> list[dict]:
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return [r for r in rows if r.get("train_loss") is not None]


def _timed_lines(run: CliRun) -> list[tuple[float, str]]:
    start = time.perf_counter()
    return [(time.perf_counter() - start, line) for line in run.lines(poll=0.0005)]


def _timings(lines: list[tuple[float, str]]) -> tuple[float, float]:
    """(seconds per step, seconds from a step's line to its "checkpoint" line) of a run's output."""
    steps = {ln.split()[1].split("/")[0]: t for t, ln in lines if ln.startswith("step ")}
    saved = {ln.split()[2].rstrip(":"): t for t, ln in lines if ln.startswith("checkpoint step ")}
    gaps = sorted(saved[k] - steps[k] for k in saved if k in steps)
    times = sorted(steps.values())
    step_s = (times[-1] - times[0]) / max(len(times) - 1, 1) if len(times) > 1 else 0.1
    return max(step_s, 0.005), max(gaps[len(gaps) // 2] if gaps else 0.02, 0.001)


def _kill_at_random(run: CliRun, mode: str, rng: random.Random, step_s: float, save_s: float) -> tuple[bool, int]:
    """Watch ``run``'s output and SIGKILL it at a moment drawn for ``mode``; (killed, steps it printed)."""
    kill_at: Optional[float] = None
    after = rng.randint(1, 2)  # step lines to see first
    if mode == "startup":
        kill_at = time.perf_counter() + rng.uniform(0.0, 2.0)
    pos, buf, steps = 0, b"", 0
    while run.alive():
        with open(run.out_path, "rb") as f:
            f.seek(pos)
            chunk = f.read()
        pos += len(chunk)
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.startswith(b"step "):
                steps += 1
                if steps == after and kill_at is None:
                    # "checkpoint": the step's checkpoint is written right after its line is printed, for
                    # about save_s (measured on the reference run, so fast machines are hit too)
                    delay = rng.uniform(0.0, 1.5 * save_s) if mode == "checkpoint" else rng.uniform(0.0, step_s)
                    kill_at = time.perf_counter() + delay
        if kill_at is not None and time.perf_counter() >= kill_at:
            run.kill()
            return True, steps
        time.sleep(0.001)
    return False, steps


def kill_loop(model: Path, data: Path, workdir: Path, *, kills: int = 20, iters: int = 40, backend: str = "mlx",
              seed: int = 0, tolerance: float = 1e-6, max_runs: int = 200,
              log: Callable[[str], None] = lambda s: None) -> KillLoopReport:
    started = time.perf_counter()
    rng = random.Random(seed)
    workdir = Path(workdir)
    report = KillLoopReport(backend=backend)
    ref_out, out = workdir / "reference", workdir / "killed"

    ref = start_cli(train_args(model, data, ref_out, iters, backend), workdir, name="reference")
    step_s, save_s = _timings(_timed_lines(ref))
    report.step_s, report.save_s = step_s, save_s
    report.runs += 1
    if ref.wait() != 0:
        report.failures.append(f"reference run failed: {ref.stderr().strip()[-500:]}")
        return report

    argv = train_args(model, data, out, iters, backend)
    while report.runs < max_runs:
        run = start_cli(argv, workdir, name="killed")
        report.runs += 1
        if report.kills >= kills:  # enough: let it finish
            code = run.wait()
            if code != 0:
                report.failures.append(f"final resume exited {code}: {run.stderr().strip()[-500:]}")
            break
        mode = rng.choices(["startup", "step", "checkpoint"], weights=[0.15, 0.45, 0.40])[0]
        killed, _ = _kill_at_random(run, mode, rng, step_s, save_s)
        code = run.wait()
        if not killed:
            if code != 0:
                report.failures.append(f"run {report.runs} exited {code}: {run.stderr().strip()[-500:]}")
            break  # it finished before the kill was due
        if code != -9:
            report.failures.append(f"run {report.runs}: SIGKILL but exit status {code}")
        report.kills += 1
        report.kills_at_startup += mode == "startup"
        partial = partial_files(out)
        if partial:
            report.kills_mid_write += 1
            report.partial_names += [p.name for p in partial]
        problems = check_run_folder(out, backend)
        report.kills_damaged += bool(problems)
        report.failures += [f"kill {report.kills} ({mode}): {p}" for p in problems]
        latest = out / "checkpoints" / "latest"
        if latest.is_file():
            argv = ["train", "--resume", str(out)]
        else:  # killed before the first checkpoint: what the error message tells the user to do
            report.kills_before_first_checkpoint += 1
            argv = train_args(model, data, out, iters, backend) + ["--overwrite"]
        log(f"kill {report.kills} ({mode}): latest={latest.read_text().strip() if latest.is_file() else None} "
            f"partial={[p.name for p in partial]}")

    leftovers = partial_files(out)
    if leftovers:
        report.failures.append(f"temporary files left after the run: {[p.name for p in leftovers]}")
    try:
        report.steps = load_checkpoint_files(latest_checkpoint(out), backend)
        if report.steps != iters:
            report.failures.append(f"the run ended at step {report.steps} of {iters}")
        ref_w, got_w = load_adapters(ref_out / ADAPTERS[backend]), load_adapters(out / ADAPTERS[backend])
        if set(ref_w) != set(got_w):
            report.failures.append("final adapters hold other tensors than the reference's")
        else:
            report.max_weight_diff = max(float(np.max(np.abs(ref_w[k] - got_w[k]))) for k in ref_w)
            if not report.max_weight_diff <= tolerance:
                report.failures.append(f"final weights differ from the uninterrupted run by {report.max_weight_diff}")
        ref_rows, got_rows = _train_rows(ref_out), _train_rows(out)
        if [r["step"] for r in got_rows] != list(range(1, iters + 1)):
            report.failures.append(f"metrics.jsonl steps are {[r['step'] for r in got_rows]}")
        else:
            report.max_loss_diff = max(abs(a["train_loss"] - b["train_loss"]) for a, b in zip(ref_rows, got_rows))
            if not report.max_loss_diff <= 1e-4:
                report.failures.append(f"logged losses differ from the uninterrupted run by {report.max_loss_diff}")
    except Exception as e:  # a missing or unreadable final file is a failure of the loop, reported as such
        report.failures.append(f"final check failed: {type(e).__name__}: {e}")
    report.elapsed_s = time.perf_counter() - started
    return report
