"""Generation for curation: mlxsft's batched generator against ``mlx_lm.batch_generate``, same requests, one run.

    python bench/bench_generate_batch.py                      # embedded SmolLM2-135M, 32 prompts x K=4, 64 tokens
    python bench/bench_generate_batch.py --label quiet --torch --pipelines

The requests are the first ``--prompts`` questions of the bundled eval set, each asked ``--k`` times (best-of-K's
candidates), at most ``--max-tokens`` tokens, ``--batch`` rows decoded together, on one loaded model; both sides
stop at the same ids (EOS and ``<|im_end|>``). Cases, each run peer first and then ours, ``--repeats`` times
(best kept):

- ``sampled``: K samples at ``--temp`` (best-of-k, distill): mlx_lm with its categorical sampler, ours with
  per-row seeds. The outputs differ (other random draws), so the speed is generated tokens per second of wall time.
- ``greedy``: each prompt once, greedy (the before/after table): both give the same tokens.
- ``--torch``: our torch backend on the greedy case, in a child process without OpenBLAS preloaded (it slows
  torch's own kernels; ``mlxsft.machine.ensure_fast_blas``).
- ``--pipelines``: ``best_of_k`` and ``distill`` end to end with the local teacher (scoring and writing included).

MLX runs with Debian's OpenBLAS preloaded, for both sides (the script re-executes itself with it, as the CLI
does). Prints tokens/s, the ratios ours/peer and the load average; writes ``bench/results/generate-batch-<label>.json``.
Not a test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def questions(n: int) -> list[dict]:
    from mlxsft.data.bundled_paths import bundled_path

    rows = [json.loads(line) for line in bundled_path("eval").read_text().splitlines() if line.strip()]
    if len(rows) < n:
        raise SystemExit(f"--prompts {n}: the bundled eval set has {len(rows)} questions")
    return rows[:n]


def load(model_spec: str):
    from mlxsft.backends.generation import hf_tokenizer
    from mlxsft.data.templates import resolve_chat_template
    from mlxsft.models import load_mlx

    model, tokenizer, _ = load_mlx(model_spec)
    model.eval()
    return model, tokenizer, resolve_chat_template(hf_tokenizer(tokenizer), None)


def run_peer(model, tokenizer, template: str, convs: list, args, temp: float) -> dict:
    """``mlx_lm.batch_generate`` on the rendered prompts, stopping at our stop ids."""
    from mlx_lm.generate import batch_generate
    from mlx_lm.sample_utils import make_sampler

    from mlxsft.backends.generation import hf_tokenizer, render_prompt, stop_condition

    hf = hf_tokenizer(tokenizer)
    prompts = [render_prompt(hf, c, template) for c in convs]
    stop = stop_condition(tokenizer, template)
    eos = tokenizer.eos_token_ids
    tokenizer.eos_token_ids = set(stop.token_ids)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        with_stats = batch_generate(model, tokenizer, prompts, max_tokens=args.max_tokens, return_token_ids=True,
                                    completion_batch_size=args.batch, sampler=make_sampler(temp=temp))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        tokenizer.eos_token_ids = eos
    return timed(with_stats.stats.generation_tokens, wall, cpu, with_stats.token_ids)


def timed(tokens: int, wall: float, cpu: float, token_ids: list) -> dict:
    """A run's speed by the clock and by CPU time (all threads): on a busy machine the clock counts the time
    other processes held the cores, CPU seconds do not, so ``tokens_per_cpu_s`` compares sides fairly there."""
    return {"tokens": tokens, "wall_s": wall, "tokens_per_sec": tokens / wall, "cpu_s": cpu,
            "tokens_per_cpu_s": tokens / cpu if cpu > 0 else 0.0, "token_ids": token_ids}


def run_ours(model, tokenizer, template: str, convs: list, args, temp: float) -> dict:
    from mlxsft.backends.mlx.generate import generate_answers_batch

    start, cpu = time.perf_counter(), time.process_time()
    answers = generate_answers_batch(model, tokenizer, convs, template, max_tokens=args.max_tokens,
                                     batch_size=args.batch, temp=temp,
                                     seeds=list(range(len(convs))) if temp > 0 else None)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return timed(sum(a.tokens for a in answers), wall, cpu, [a.token_ids for a in answers])


def best(runs: list[dict]) -> dict:
    return max(runs, key=lambda r: r["tokens_per_sec"])


def torch_greedy(args, convs: list) -> dict:
    """Our torch backend's greedy batch, in a child without OpenBLAS preloaded (run by ``--torch-child``)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["MLXSFT_NO_BLAS_REEXEC"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "torch.json"
        subprocess.run([sys.executable, __file__, "--torch-child", str(out), "--model", args.model,
                        "--prompts", str(args.prompts), "--max-tokens", str(args.max_tokens),
                        "--batch", str(args.batch), "--repeats", str(args.repeats)], check=True, env=env)
        return json.loads(out.read_text())


def torch_child(args) -> None:
    from mlxsft.backends.torch.generate import generate_answers_batch, load_views

    tokenizer, views = load_views(args.model, device="cpu")
    model = views["base"].model
    from mlxsft.data.templates import resolve_chat_template

    template = resolve_chat_template(tokenizer._tokenizer, None)
    convs = [[{"role": "user", "content": q["question"]}] for q in questions(args.prompts)]
    generate_answers_batch(model, tokenizer, convs[:2], template, max_tokens=4, batch_size=2)  # warm-up
    runs = []
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        answers = generate_answers_batch(model, tokenizer, convs, template, max_tokens=args.max_tokens,
                                         batch_size=args.batch)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        runs.append(timed(sum(a.tokens for a in answers), wall, cpu, [a.token_ids for a in answers]))
    Path(args.torch_child).write_text(json.dumps(best(runs)))


def pipelines(args, convs_rows: list[dict]) -> list[dict]:
    """``best_of_k`` and ``distill`` end to end with the local teacher, ``--batch`` answers per call."""
    from mlxsft.curate.best_of_k import BestOfKOptions, best_of_k
    from mlxsft.curate.distill import DistillOptions, distill
    from mlxsft.curate.scorers import make_scorer
    from mlxsft.curate.teachers import LocalTeacher, Sampling

    teacher = LocalTeacher(args.model, batch_size=args.batch)
    sampling = Sampling(temp=args.temp, max_tokens=args.max_tokens, seed=0)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.jsonl"
        prompts.write_text("".join(json.dumps({"question": r["question"], "reference": r["reference"]}) + "\n"
                                   for r in convs_rows if r.get("reference") is not None))  # the reference scorer
        res = best_of_k(teacher, make_scorer("reference"),
                        BestOfKOptions(prompts=prompts, out=Path(tmp) / "best.jsonl", k=args.k, sampling=sampling,
                                       batch_size=args.batch))
        out.append({"case": f"best-of-k K={args.k}", "tokens": res.tokens, "wall_s": res.elapsed_s,
                    "tokens_per_sec": res.tokens / res.elapsed_s})
        res = distill(teacher, DistillOptions(prompts=prompts, out=Path(tmp) / "distilled.jsonl", k=args.k,
                                              sampling=sampling, batch_size=args.batch))
        out.append({"case": f"distill K={args.k}", "tokens": res.tokens, "wall_s": res.elapsed_s,
                    "tokens_per_sec": res.tokens / res.elapsed_s})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--temp", type=float, default=0.8)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--cases", nargs="+", choices=["sampled", "greedy"], default=["sampled", "greedy"])
    p.add_argument("--torch", action="store_true", help="also our torch backend on the greedy case")
    p.add_argument("--pipelines", action="store_true", help="also best_of_k and distill end to end")
    p.add_argument("--label", default="local")
    p.add_argument("--torch-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.torch_child:
        torch_child(args)
        return 0
    from mlxsft.machine import blas_preloaded, cpu_description, mlx_blas

    if not blas_preloaded():
        ensure_fast_blas_for_script()
    load_start = os.getloadavg()
    rows = questions(args.prompts)
    model, tokenizer, template = load(args.model)
    base = [[{"role": "user", "content": r["question"]}] for r in rows]
    cases = {"sampled": ([c for c in base for _ in range(args.k)], args.temp), "greedy": (base, 0.0)}
    cases = {name: case for name, case in cases.items() if name in args.cases}
    warm = base[:4]
    run_peer(model, tokenizer, template, warm, args, 0.0)
    run_ours(model, tokenizer, template, warm, args, 0.0)
    results = []
    for name, (convs, temp) in cases.items():
        peer, ours = [], []
        for _ in range(args.repeats):
            peer.append(run_peer(model, tokenizer, template, convs, args, temp))
            ours.append(run_ours(model, tokenizer, template, convs, args, temp))
        bp, bo = best(peer), best(ours)
        case = {"case": name, "requests": len(convs), "temp": temp,
                "peer": {k: v for k, v in bp.items() if k != "token_ids"},
                "mlxsft_mlx": {k: v for k, v in bo.items() if k != "token_ids"},
                "ratio_mlx": bo["tokens_per_sec"] / bp["tokens_per_sec"],
                "ratio_mlx_cpu": bo["tokens_per_cpu_s"] / bp["tokens_per_cpu_s"]}
        if temp == 0:
            case["same_tokens_as_peer"] = sum(a == b for a, b in zip(bp["token_ids"], bo["token_ids"]))
        results.append(case)
        print(json.dumps(case), flush=True)
    if args.torch and "greedy" in cases:
        tor = torch_greedy(args, base)
        greedy = next(c for c in results if c["case"] == "greedy")
        greedy["mlxsft_torch"] = {k: v for k, v in tor.items() if k != "token_ids"}
        greedy["ratio_torch"] = tor["tokens_per_sec"] / greedy["peer"]["tokens_per_sec"]
        greedy["ratio_torch_cpu"] = tor["tokens_per_cpu_s"] / greedy["peer"]["tokens_per_cpu_s"]
    piped = pipelines(args, rows) if args.pipelines else []
    sampled = [c for c in results if c["case"] == "sampled"]
    for row in piped:
        row["ratio_to_peer_sampled"] = row["tokens_per_sec"] / sampled[0]["peer"]["tokens_per_sec"] if sampled else None

    print(f"\nmodel {args.model}; {args.prompts} prompts, K={args.k}, {args.max_tokens} tokens max, batch "
          f"{args.batch}; MLX BLAS: {mlx_blas()}; best of {args.repeats}")
    print(f"{'case':12} {'requests':>8} {'mlx_lm tok/s':>13} {'mlxsft tok/s':>13} {'ratio':>6}"
          f" {'mlx_lm tok/cpu-s':>17} {'mlxsft tok/cpu-s':>17} {'ratio':>6}")
    for c in results:
        sides = [("mlxsft_mlx", "ratio_mlx", c["case"])]
        if "mlxsft_torch" in c:
            sides.append(("mlxsft_torch", "ratio_torch", c["case"] + " torch"))
        for side, ratio, name in sides:
            print(f"{name:12} {c['requests']:>8} {c['peer']['tokens_per_sec']:>13.1f} {c[side]['tokens_per_sec']:>13.1f}"
                  f" {c[ratio]:>6.2f} {c['peer']['tokens_per_cpu_s']:>17.1f} {c[side]['tokens_per_cpu_s']:>17.1f}"
                  f" {c[ratio + '_cpu']:>6.2f}")
    for row in piped:
        against = f" ({row['ratio_to_peer_sampled']:.2f}x mlx_lm's sampled rate)" if sampled else ""
        print(f"{row['case']:20} {row['tokens_per_sec']:.1f} tok/s{against}")
    load_end = os.getloadavg()
    print(f"load average: start {tuple(round(x, 2) for x in load_start)}, end {tuple(round(x, 2) for x in load_end)}")
    path = ROOT / "bench" / "results" / f"generate-batch-{args.label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_model": cpu_description(),
                    "cores": os.cpu_count(),
                    "system": f"{platform.system()} {platform.release()}", "mlx_blas": mlx_blas()},
        "load_average_at_start": load_start, "load_average_at_end": load_end,
        "settings": {"model": args.model, "prompts": args.prompts, "k": args.k, "max_tokens": args.max_tokens,
                     "batch": args.batch, "temp": args.temp, "repeats": args.repeats},
        "cases": results, "pipelines": piped}, indent=2) + "\n")
    print(f"written: {path}")
    return 0


def ensure_fast_blas_for_script() -> None:
    """Re-execute this script with OpenBLAS preloaded (``ensure_fast_blas`` re-enters ``mlxsft``, not a script)."""
    from mlxsft.machine import NO_REEXEC_ENV, find_openblas

    lib = find_openblas()
    if lib is None or os.environ.get(NO_REEXEC_ENV):
        return
    env = dict(os.environ, LD_PRELOAD=(lib + " " + os.environ.get("LD_PRELOAD", "")).strip())
    env[NO_REEXEC_ENV] = "1"
    os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)


if __name__ == "__main__":
    sys.exit(main())
