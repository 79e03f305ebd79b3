"""``mlxsft data filter --select 10000`` on a 1,000,000-row pool: wall time and peak memory, against the old path.

    python -m bench.bench_filter                       # 1M rows (~25 min in all on 2 cores), bench/results/filter-1m.json
    python -m bench.bench_filter --rows 20000 --old-rows 5000 --select 500 --label quick      # a minute or two

Builds its own pool (``bench/filter_pool.py``: stdlib-docstring chats with many exact and near duplicates,
deterministic from ``--seed``) in a temporary folder, then runs the CLI as a user would, one subprocess at a time:

  new    ``mlxsft data filter --in pool --out out --select N`` at the defaults (rensa MinHash; ``auto`` embeds
         with the static model distilled from MiniLM on pools over 20,000 rows);
  old    the path before: ``--minhash datasketch --embedder minilm``, on the first ``--old-rows`` rows (100k by
         default: at 1M it would take hours), and ``new`` on the same rows for the ratio.

Each run's wall time, CPU time and peak resident memory (the process and its workers together, sampled from /proc
every 0.25 s; and the largest single process from ``os.wait4``) are printed
with the ratios and the load average (``os.getloadavg``: a busy machine makes every number slower). Also measured:
near dedup's precision and recall of the pairs at or above the threshold against exact Jaccard on a 10k-row sample
(``bench/dedup_quality.py``), for rensa and datasketch, and the selection's coverage: how many of the pool's
top-level modules (its planted families) the N selected rows ask about, against N random kept rows. The static
model is distilled once into ``$MLXSFT_CACHE/embedders`` (default ``~/.cache/mlxsft``); a first run pays for that
and says so (``static_model_cached``). Results: ``bench/results/filter-<label>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S, LIMIT_GB = 600.0, 2.0  # the target: 1M rows with --select 10000 in 10 minutes and 2 GB


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every process below it (the filter's worker processes), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier and p not in tree]
        tree.update(kids)
        frontier = kids
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_filter(pool: Path, out: Path, select: int, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "mlxsft", "data", "filter", "--in", str(pool), "--out", str(out),
           "--select", str(select), "--overwrite", "--json", *extra]
    start = time.perf_counter()
    with open(out.with_suffix(".log"), "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
        peak = [0]
        stop = threading.Event()

        def sample() -> None:  # the sum over the process tree: wait4's maxrss is one process's, not the workers'
            while not stop.wait(0.25):
                peak[0] = max(peak[0], tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout = proc.stdout.read() if proc.stdout else b""
        stop.set()
        sampler.join()
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed; see {out.with_suffix('.log')}")
    report = json.loads(stdout)
    return {"command": " ".join(["mlxsft", *cmd[3:]]), "wall_s": round(wall, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),  # all processes: on a busy machine wall_s >> cpu_s / cores
            "peak_rss_gb": round(max(peak[0] / 2**30, usage.ru_maxrss / 2**20), 3),  # all processes together
            "peak_rss_one_process_gb": round(usage.ru_maxrss / 2**20, 3), "rows_in": report["rows_in"],
            "rows_out": report["rows_out"], "removed": report["removed"], "embedder": report["embedder"],
            "minhash": report.get("minhash"), "load_average_after": [round(x, 2) for x in os.getloadavg()]}


def head(pool: Path, rows: int, dest: Path) -> Path:
    with open(pool, "rb") as src, open(dest, "wb") as out:
        for i, line in enumerate(src):
            if i == rows:
                break
            out.write(line)
    return dest


def coverage(pool: Path, selected: Path, select: int, seed: int = 0) -> dict:
    """Distinct modules (``family``) and functions or classes (``item``) the selected rows ask about, against
    ``select`` rows drawn at random from the pool (duplicates share their original's family and item, so the pool
    stands in for the rows kept before selection)."""
    def meta(path: Path) -> list[tuple[str, str]]:
        with open(path, encoding="utf-8") as f:
            return [(m["family"], m["item"]) for m in (json.loads(line)["meta"] for line in f)]

    chosen, every = meta(selected), meta(pool)
    sample = random.Random(seed).sample(every, min(select, len(every)))
    return {"families_in_pool": len({f for f, _ in every}), "families_selected": len({f for f, _ in chosen}),
            "families_random": len({f for f, _ in sample}), "items_in_pool": len({i for _, i in every}),
            "items_selected": len({i for _, i in chosen}), "items_random": len({i for _, i in sample})}


def dedup_check(pool: Path, rows: int) -> list[dict]:
    from bench.dedup_quality import pair_quality

    texts = []
    with open(pool, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == rows:
                break
            msgs = json.loads(line)["messages"]
            texts.append(f"{msgs[0]['content']}\n{msgs[1]['content']}")
    # the rule near dedup uses (the exact check), then the estimate alone (the rule before it) for comparison
    return [pair_quality(texts, 0.8, backend, estimate_only=estimate) for backend in ("rensa", "datasketch")
            for estimate in (False, True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--select", type=int, default=10_000)
    ap.add_argument("--old-rows", type=int, default=100_000, help="rows for the old path and its ratio (0: skip)")
    ap.add_argument("--old-select", type=int, default=5_000, help="--select for the old-path comparison")
    ap.add_argument("--dedup-sample", type=int, default=10_000, help="rows for the near-dup precision/recall check")
    ap.add_argument("--embedder", default="auto", help="--embedder of the new runs (auto: static beyond 20k rows)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label", default=None, help="results file name: filter-<label>.json [default: from --rows]")
    ap.add_argument("--keep", type=Path, default=None, help="build the pool and outputs here and keep them")
    args = ap.parse_args()
    from bench.filter_pool import write_pool
    from mlxsft.curate.static_embed import cached_path
    from mlxsft.machine import cpu_description

    label = args.label or (f"{args.rows // 1_000_000}m" if args.rows % 1_000_000 == 0 else f"{args.rows}")
    load_start = [round(x, 2) for x in os.getloadavg()]
    result: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cpu_model": cpu_description(),
                                "cores": os.cpu_count(),
                                "system": f"{platform.system()} {platform.release()}",
                                "python": platform.python_version()},
                    "load_average_at_start": load_start, "rows": args.rows, "select": args.select,
                    "seed": args.seed, "static_model_cached": (cached_path() / "mlxsft.json").is_file()}
    with tempfile.TemporaryDirectory(prefix="bench-filter-") as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        pool = write_pool(tmp / "pool.jsonl", args.rows, args.seed)
        result["pool"] = {"build_s": round(time.perf_counter() - start, 1), "bytes": pool.stat().st_size}
        print(f"pool: {args.rows:,} rows, {pool.stat().st_size / 2**20:.0f} MiB, "
              f"{result['pool']['build_s']} s; load average {load_start}", flush=True)

        new = run_filter(pool, tmp / "new.jsonl", args.select, ["--embedder", args.embedder])
        new["coverage"] = coverage(pool, tmp / "new.jsonl", args.select)
        result["new"] = new
        cov = new["coverage"]
        print(f"new  {args.rows:>9,} rows --select {args.select}: {new['wall_s']:7.1f} s, "
              f"{new['peak_rss_gb']:.2f} GB peak, {new['rows_out']:,} rows out "
              f"({new['minhash']}, {new['embedder']})", flush=True)
        print(f"     selection covers {cov['items_selected']:,} of {cov['items_in_pool']:,} functions/classes and "
              f"{cov['families_selected']} of {cov['families_in_pool']} modules; {args.select:,} random rows: "
              f"{cov['items_random']:,} and {cov['families_random']}", flush=True)
        result["within_target"] = (args.rows >= 1_000_000 and args.select >= 10_000 and new["wall_s"] <= LIMIT_S
                                   and new["peak_rss_gb"] <= LIMIT_GB)

        if args.old_rows:
            sub = head(pool, args.old_rows, tmp / "sub.jsonl")
            old = run_filter(sub, tmp / "old.jsonl", args.old_select, ["--minhash", "datasketch",
                                                                       "--embedder", "minilm"])
            same = run_filter(sub, tmp / "same.jsonl", args.old_select, ["--embedder", args.embedder])
            result["old_path"] = {"rows": args.old_rows, "select": args.old_select, "old": old, "new": same,
                                  "speedup": round(old["wall_s"] / same["wall_s"], 2),
                                  "memory_ratio": round(old["peak_rss_gb"] / same["peak_rss_gb"], 2)}
            for name, r in (("old", old), ("new", same)):
                print(f"{name:4s} {args.old_rows:>9,} rows --select {args.old_select}: {r['wall_s']:7.1f} s, "
                      f"{r['peak_rss_gb']:.2f} GB peak, {r['rows_out']:,} rows out ({r['minhash']}, {r['embedder']})",
                      flush=True)
            print(f"ratio old/new at {args.old_rows:,} rows: {result['old_path']['speedup']}x time, "
                  f"{result['old_path']['memory_ratio']}x memory", flush=True)

        if args.dedup_sample:
            checks = dedup_check(pool, args.dedup_sample)
            result["near_dup_pairs"] = checks
            for c in checks:
                print(f"near dup on {c['rows']:,} rows ({c['backend']}, confirmed by the {c['confirm']}): precision "
                      f"{c['precision']:.3f}, recall "
                      f"{c['recall']:.3f} of {c['exact_pairs']:,} exact pairs >= {c['threshold']}", flush=True)

    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    verdict = ("met" if result["within_target"] else "NOT met") if args.rows >= 1_000_000 else "not measured"
    print(f"target (1M rows, --select 10000, <= {LIMIT_S:.0f} s, <= {LIMIT_GB} GB): {verdict}; "
          f"load average {load_start} -> {result['load_average_at_end']}")
    out = ROOT / "bench" / "results" / f"filter-{label}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
