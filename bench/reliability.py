"""Reliability figures: kill -9 and resume ``mlxsft train`` many times, fuzz the data loader, print the table.

    python bench/reliability.py                       # 20 kills (MLX), 500 generated files of each kind
    python bench/reliability.py --kills 100 --fuzz 2000 --torch-kills 5 --seed 7

On a tiny random llama (built here, seconds) with the real SmolLM2 tokenizer and an isolated cache:

1. kill loop (``tests/reliability/killloop.py``): one uninterrupted run, then the same run SIGKILLed at random
   moments (start-up, mid-step, mid-checkpoint) ``--kills`` times, resumed with ``--resume`` after each. After
   every kill the latest checkpoint must load and no file with its final name may be damaged; at the end no
   temporary file may remain and the weights must equal the uninterrupted run's.
2. fuzzing (``tests/reliability/fuzzing.py``): ``--fuzz`` random malformed files per kind (JSONL, JSON, CSV,
   Parquet) through ``mlxsft data validate``'s and ``train``'s loaders, and row sets through tokenization;
   only one-line ``file:line`` errors are allowed, within a time limit.

Prints the figures and exits 1 if anything failed. Not part of the test suite (``tests/reliability`` runs a
fixed, smaller version of both).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/reliability.py` from anywhere: the tests package is the harness


def build_fixtures(work: Path) -> tuple[Path, Path, object]:
    """A tiny random llama with the SmolLM2 tokenizer, the 8-row training set, and that tokenizer."""
    from transformers import AutoTokenizer

    from tests.helpers import write_data
    from tests.tiny import save_smol_tokenizer, tiny_hf_model

    tok_dir = save_smol_tokenizer(work / "tokenizer")
    model = tiny_hf_model(work / "tiny-llama", "llama", tok_dir)
    return model, write_data(work / "data"), AutoTokenizer.from_pretrained(tok_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs of the MLX run (default 20)")
    ap.add_argument("--iters", type=int, default=None, help="training steps (default: 2 x kills, at least 20)")
    ap.add_argument("--torch-kills", type=int, default=0, help="SIGKILLs of a torch run too (slower; default 0)")
    ap.add_argument("--fuzz", type=int, default=500, help="generated files per kind (default 500; 0 = skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (run folders, logs)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="mlxsft-reliability-"))
    os.environ["MLXSFT_CACHE"] = str(work / "cache")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tests.reliability.fuzzing import run_fuzz
    from tests.reliability.killloop import kill_loop

    t0 = time.perf_counter()
    model, data, tokenizer = build_fixtures(work)
    rows: list[tuple[str, str]] = []
    failures: list[str] = []

    loops = [("mlx", args.kills)] + ([("torch", args.torch_kills)] if args.torch_kills else [])
    for backend, kills in loops:
        if kills <= 0:
            continue
        iters = args.iters or max(20, 2 * kills)
        print(f"kill loop ({backend}): {kills} kills over {iters} steps ...", flush=True)
        r = kill_loop(model, data, work / f"kill-{backend}", kills=kills, iters=iters, backend=backend,
                      seed=args.seed)
        rows += [
            (f"{backend}: kills survived", f"{r.kills - r.kills_damaged} of {r.kills} (checkpoint loads, no "
                                           f"damaged file; then --resume)"),
            (f"{backend}: kills that cut a write short", f"{r.kills_mid_write} (temporary files found, then removed)"),
            (f"{backend}: kills during start-up", str(r.kills_at_startup)),
            (f"{backend}: processes started", str(r.runs)),
            (f"{backend}: one step / one checkpoint write", f"{r.step_s * 1e3:.0f} ms / {r.save_s * 1e3:.0f} ms"),
            (f"{backend}: final weights vs uninterrupted", f"max |diff| {r.max_weight_diff:.2e}, "
                                                           f"loss |diff| {r.max_loss_diff:.2e}"),
            (f"{backend}: time", f"{r.elapsed_s:.0f}s"),
        ]
        failures += [f"{backend}: {f}" for f in r.failures]

    if args.fuzz > 0:
        print(f"fuzzing: {args.fuzz} files per kind ...", flush=True)
        t = time.perf_counter()
        folder = work / "fuzz"
        folder.mkdir()
        f = run_fuzz(folder, args.fuzz, tokenizer=tokenizer, derandomize=False)
        for kind, n in sorted(f.tried.items()):
            rows.append((f"fuzz: {kind}", f"{n} generated inputs, {f.rows[kind]} rows checked"))
        rows += [
            ("fuzz: malformed inputs tried", f"{sum(f.tried.values())} ({sum(f.rows.values())} rows)"),
            ("fuzz: outcomes", ", ".join(f"{k} {v}" for k, v in sorted(f.outcomes.items()))),
            ("fuzz: time", f"{time.perf_counter() - t:.0f}s"),
        ]
        failures += [f"fuzz {x}" for x in f.failures]

    rows.append(("failures", str(len(failures))))
    width = max(len(k) for k, _ in rows)
    print(f"\nmlxsft reliability ({time.perf_counter() - t0:.0f}s, seed {args.seed})")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    for x in failures:
        print(f"FAIL {x}")
    if args.keep:
        print(f"work folder: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":  # the guard matters: kill-loop processes come from a multiprocessing forkserver
    sys.exit(main())
