"""Big-vocabulary heads: peak memory, tokens/s and the memory plan at long rows, chunked head against whole logits.

    python -m bench.bench_head                                  # gemma3-270m, rows of 512 / 2048 / 8192 tokens
    python -m bench.bench_head --lengths 512 2048 --backends torch --steps 3
    python -m bench.bench_head --lengths 8192 --max-whole 4096 --grad-checkpoint   # 8192-token rows in 24 GB

Each case is one `mlxsft train` (LoRA, one row per step, `--iters N`, no before/after table) on rows of exactly
``length`` tokens, half of them supervised (the assistant turn), with the head in chunks (today) and with
``MLXSFT_WHOLE_HEAD=1`` (every supervised position's logits at once, differentiated by the framework: the code
before the chunks). From each run: tokens/s over the steps after the first (the first warms up), the peak memory
the run measured (MLX's peak, torch's resident set on a CPU) and the plan it printed (``setup.json``). Prints a
table and writes it with the machine and the load average to ``bench/results/head.json`` (``--results``).
A whole-logits case that cannot fit is reported as its error rather than run out of memory: ``--max-whole``.
``--grad-checkpoint`` trains with ``--grad-checkpoint`` (each block recomputed in the backward pass): at 8192
tokens MLX's attention activations over 18 layers do not fit in 24 GB without it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("river stone lamp orange window seven quiet market paper bridge winter garden copper signal "
         "harbor pencil meadow engine silver canvas").split()


def write_rows(folder: Path, length: int, rows: int = 4) -> Path:
    """``rows`` chats whose rendered length is ``length`` tokens or a little more (cut by --max-seq-len)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in range(rows):
        words = [WORDS[(r * 7 + i * 3) % len(WORDS)] for i in range(length)]  # ~1 token per word
        half = length // 2
        lines.append(json.dumps({"messages": [{"role": "user", "content": " ".join(words[:half])},
                                              {"role": "assistant", "content": " ".join(words[half:])}]}))
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def run_case(backend: str, length: int, whole: bool, steps: int, data: Path, out: Path,
             grad_checkpoint: bool = False) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if whole:
        env["MLXSFT_WHOLE_HEAD"] = "1"
    cmd = [sys.executable, "-m", "mlxsft", "train", "--model", "gemma3-270m", "--backend", backend,
           "--data", str(data), "--max-seq-len", str(length), "--overlong", "truncate", "--batch-size", "1",
           "--micro-batch-tokens", str(length), "--iters", str(steps), "--report-every", "1",
           "--no-compare", "--eval-every", "0", "--save-every", "0", "--out", str(out), "--overwrite", "--force"]
    if grad_checkpoint:
        cmd.append("--grad-checkpoint")
    print("$", ("MLXSFT_WHOLE_HEAD=1 " if whole else "") + " ".join(cmd), flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": f"exit {done.returncode}: {tail[0]}", "wall_s": wall}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps_ = [r for r in records if r.get("train_loss") is not None]
    later = [r for r in steps_ if r["step"] > 1] or steps_
    setup = json.loads((out / "setup.json").read_text()) if (out / "setup.json").is_file() else {}
    plan = (setup.get("memory_plan") or {}).get("total_gb")
    peak = max(r.get("peak_memory_gb") or 0.0 for r in steps_)
    return {"tokens_per_sec": sum(r["tokens_per_sec"] for r in later) / len(later), "peak_gb": peak,
            "plan_gb": plan, "plan_vs_peak": (plan / peak - 1.0) if plan and peak else None,
            "train_loss_step1": steps_[0]["train_loss"], "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    from mlxsft.machine import cpu_description

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", nargs="+", default=["torch", "mlx"])
    p.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--max-whole", type=int, default=8192, help="longest rows to try with the whole logits")
    p.add_argument("--grad-checkpoint", action="store_true", help="train with --grad-checkpoint")
    p.add_argument("--out", type=Path, default=Path("runs/bench-head"))
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "head.json")
    args = p.parse_args(argv)
    load = os.getloadavg()
    cases = []
    for length in args.lengths:
        data = write_rows(args.out / f"data-{length}", length)
        for backend in args.backends:
            for whole in (False, True):
                if whole and length > args.max_whole:
                    continue
                name = f"{backend}-{length}-{'whole' if whole else 'chunked'}"
                result = run_case(backend, length, whole, args.steps, data, args.out / name, args.grad_checkpoint)
                cases.append({"backend": backend, "length": length, "head": "whole" if whole else "chunked",
                              "grad_checkpoint": args.grad_checkpoint, **result})
                print(json.dumps(cases[-1]), flush=True)
    print(f"\n{'backend':7} {'row':>5} {'head':8} {'tok/s':>7} {'peak GB':>8} {'plan GB':>8} {'plan/peak':>9}")
    for c in cases:
        if "error" in c:
            print(f"{c['backend']:7} {c['length']:>5} {c['head']:8} {c['error']}")
            continue
        ratio = f"{c['plan_vs_peak']:+.0%}" if c.get("plan_vs_peak") is not None else "-"
        print(f"{c['backend']:7} {c['length']:>5} {c['head']:8} {c['tokens_per_sec']:7.1f} {c['peak_gb']:8.2f} "
              f"{c['plan_gb'] or 0:8.2f} {ratio:>9}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_model": cpu_description(),
                    "cores": os.cpu_count(),
                    "system": f"{platform.system()} {platform.release()}"},
        "load_average_at_start": load, "load_average_at_end": os.getloadavg(), "steps": args.steps,
        "model": "gemma3-270m", "cases": cases}, indent=2) + "\n")
    print(f"\nwritten: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
