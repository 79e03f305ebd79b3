"""What ``--report-to`` costs a training step: the same run without a tracker and with each one (and all four).

    python -m bench.bench_trackers                          # a tiny random llama, 40 steps, 2 rounds
    python -m bench.bench_trackers --model gemma3-270m --steps 20 --rounds 1 -- --max-seq-len 128

Each run is one ``mlxsft train --iters N --report-every 1`` (no validation or checkpoint before the last
step, every other flag after ``--`` passed through), offline, in its own folder. Its step times are the
differences of ``elapsed_s`` between consecutive ``metrics.jsonl`` lines, so a run's start-up (imports, the
trackers' own start) is left out; the first 3 steps (compilation) and the last (it saves) are dropped. The
configurations take turns within each round, so a change in the machine's load falls on all of them alike.
Prints the median step time of each configuration and its difference from the run without a tracker, and
writes them with the machine and its load average to ``bench/results/trackers.json`` (``--results``), with
the loop's own cost per record (writing the line and queueing it for the trackers), timed in this process.
The default model is the tests' tiny llama (``tests/tiny.py``): its steps are short, so it shows the most
a tracker can add relative to a step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_sft import cpu_name

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"none": [], "tensorboard": ["tensorboard"], "wandb": ["wandb"], "mlflow": ["mlflow"],
           "trackio": ["trackio"], "all four": ["tensorboard", "wandb", "mlflow", "trackio"]}
SKIP_FIRST = 3  # compilation and warm-up


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def tiny_model(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.tiny import save_smol_tokenizer, tiny_hf_model

    if not (folder / "model" / "config.json").is_file():
        tiny_hf_model(folder / "model", "llama", save_smol_tokenizer(folder / "tokenizer"))
    return folder / "model"


def step_times(run: Path) -> list[float]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    elapsed = [r["elapsed_s"] for r in rows if r.get("train_loss") is not None]
    return [b - a for a, b in zip(elapsed, elapsed[1:])][SKIP_FIRST:-1]


def record_cost(work: Path, n: int = 2000) -> dict[str, float]:
    """Microseconds the training loop spends per metrics.jsonl record with each tracker: the file line plus the
    hand-over to the trackers' queue (their logging happens on another thread, and is in the step times above)."""
    from mlxsft.config import load_config
    from mlxsft.distributed import World
    from mlxsft.runs import MetricsLog
    from mlxsft.trackers import open_trackers

    record = {"step": 1, "epoch": 0.1, "train_loss": 1.5, "learning_rate": 1e-3, "grad_norm": 0.9,
              "tokens_per_sec": 500.0, "trained_tokens": 100, "peak_memory_gb": 0.1, "elapsed_s": 1.0,
              "total_steps": n}
    out = {}
    for name, trackers in CONFIGS.items():
        run = work / "record-cost" / name.replace(" ", "-")
        run.mkdir(parents=True, exist_ok=True)
        (run / "metrics.jsonl").unlink(missing_ok=True)
        with open_trackers(load_config(None, {"report_to": trackers}), run, World(), resume=False) as queue:
            log = MetricsLog(run / "metrics.jsonl", also=queue)
            start = time.perf_counter()
            for step in range(1, n + 1):
                log.write({**record, "step": step})
            out[name] = (time.perf_counter() - start) / n * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    argv = given = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model to train (default: a tiny random llama built under --work)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-trackers")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "trackers.json")
    p.add_argument("--record-cost-only", action="store_true",
                   help="only measure the loop's cost per record, added to an existing --results file")
    args = p.parse_args(argv)
    if args.record_cost_only:
        report = json.loads(args.results.read_text())
        report["record_cost_us"] = record_cost(args.work)
        report["record_cost_load"] = load_average()
        args.results.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report["record_cost_us"], indent=1))
        return 0
    model = args.model or str(tiny_model(args.work))
    # offline as on a machine without network: no tracker setting of the user's sends these runs anywhere
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_", "TRACKIO_"))}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    load_start, started = load_average(), time.strftime("%Y-%m-%d %H:%M:%S")
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for round_ in range(args.rounds):
        for name, trackers in CONFIGS.items():
            out = args.work / f"round-{round_}" / name.replace(" ", "-")
            cmd = [sys.executable, "-m", "mlxsft", "train", "--model", model, "--out", str(out), "--overwrite",
                   "--iters", str(args.steps), "--report-every", "1", "--eval-every", "0", "--save-every", "0",
                   "--no-compare", "--backend", "mlx", "--batch-size", "2", "--max-seq-len", "64",
                   *(["--report-to", ",".join(trackers)] if trackers else []), *extra]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                print(f"{name}: mlxsft train exited {done.returncode}\n{done.stderr}", file=sys.stderr)
                return 1
            times[name] += step_times(out)
            median = statistics.median(times[name]) * 1e3
            print(f"round {round_ + 1}/{args.rounds} {name:12s} median step {median:7.2f} ms", flush=True)
    base = statistics.median(times["none"])
    results = {}
    for name, values in times.items():
        median = statistics.median(values)
        results[name] = {"median_step_ms": median * 1e3, "overhead_ms": (median - base) * 1e3,
                         "overhead_pct": (median - base) / base * 100, "steps_measured": len(values),
                         "p10_step_ms": statistics.quantiles(values, n=10)[0] * 1e3,
                         "p90_step_ms": statistics.quantiles(values, n=10)[-1] * 1e3}
    print(f"\n{'trackers':12s} {'median step':>12s} {'overhead':>10s}")
    for name, r in results.items():
        print(f"{name:12s} {r['median_step_ms']:9.2f} ms {r['overhead_ms']:+7.2f} ms ({r['overhead_pct']:+.1f}%)")
    report = {"machine": f"{os.cpu_count()}-core {platform.machine()} {platform.system()} ({cpu_name()}), "
                         f"python {platform.python_version()}",
              "started": started, "load_start": load_start, "load_end": load_average(),
              "command": "python -m bench.bench_trackers " + " ".join(given),
              "job": {"model": args.model or "tests/tiny.py llama (hidden 64, 2 layers)", "steps": args.steps,
                      "rounds": args.rounds, "batch_size": 2, "max_seq_len": 64, "backend": "mlx", "extra": extra,
                      "skipped": f"first {SKIP_FIRST} steps and the last of each run"},
              "results": results, "record_cost_us": record_cost(args.work)}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=1) + "\n")
    print("loop-side cost per record (us):", {k: round(v, 1) for k, v in report["record_cost_us"].items()})
    print(f"machine: {report['machine']}; load average {load_start} at start, {report['load_end']} at the end")
    print(f"written: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
