"""The demo's outcome over several seeds: how much of the gain is the method and how much the draw.

    python -m bench.bench_demo                      # 3 seeds of `mlxsft train` with its defaults
    python -m bench.bench_demo --seeds 0 1 2 3 --out /tmp/demo-seeds -- --backend mlx

Each seed is one `mlxsft train` run (the embedded default model and the bundled data, every other flag after
``--`` passed through), in its own folder under ``--out``. From each run's ``compare.json``: held-out questions
right before and after, wins, regressions, the share of answers that stopped at the end of turn, the
forgetting score; and the wall time. Prints mean ± standard deviation (and min-max) per figure and writes
them with the per-seed numbers to ``bench/results/demo-seeds.json`` (``--results`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def figures(compare: dict) -> dict[str, float]:
    t, n = compare["totals"], compare["n_scored"]
    f = compare.get("forgetting") or {}
    return {"base_right": t["base"]["right"] * n, "tuned_right": t["tuned"]["right"] * n, "scored": n,
            "wins": t["wins"], "regressions": t["regressions"],
            "base_stop_rate": t["base"]["stop_rate_scored"], "tuned_stop_rate": t["tuned"]["stop_rate_scored"],
            "kl_per_token": f.get("kl"), "tuned_nll": f.get("tuned_nll"), "base_nll": f.get("base_nll")}


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=Path("runs/bench-demo"))
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "demo-seeds.json")
    args = p.parse_args(argv)
    per_seed = {}
    for seed in args.seeds:
        out = args.out / f"seed-{seed}"
        cmd = [sys.executable, "-m", "mlxsft", "train", "--seed", str(seed), "--out", str(out), "--overwrite", *extra]
        print("$", " ".join(cmd), flush=True)
        start = time.perf_counter()
        done = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(f"seed {seed}: mlxsft train exited {done.returncode}", file=sys.stderr)
            return 1
        per_seed[seed] = {**figures(json.loads((out / "compare.json").read_text())), "wall_s": wall}
        print(json.dumps({"seed": seed, **per_seed[seed]}), flush=True)
    keys = [k for k in next(iter(per_seed.values())) if all(v[k] is not None for v in per_seed.values())]
    stats = {k: summary([v[k] for v in per_seed.values()]) for k in keys}
    gain = summary([v["tuned_right"] - v["base_right"] for v in per_seed.values()])
    result = {"command": "mlxsft train " + " ".join(extra), "seeds": args.seeds, "per_seed": per_seed,
              "summary": stats, "gain": gain, "load_average": os.getloadavg()}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    n = next(iter(per_seed.values()))["scored"]
    print(f"\nover {len(args.seeds)} seeds ({n} held-out verifiable questions):")
    for k in ("base_right", "tuned_right", "wins", "regressions", "base_stop_rate", "tuned_stop_rate",
              "kl_per_token", "wall_s"):
        if k in stats:
            s = stats[k]
            print(f"  {k:16s} {s['mean']:.3f} ± {s['std']:.3f}  (min {s['min']:.3f}, max {s['max']:.3f})")
    print(f"  gain (right)     {gain['mean']:+.1f} ± {gain['std']:.1f} questions")
    print(f"written: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
