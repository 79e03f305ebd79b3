"""One SFT job, four trainers: mlxsft on MLX, mlxsft on torch, ``mlx_lm.lora`` and TRL ``SFTTrainer`` + peft.

    python -m bench.bench_sft                                   # all four, 32 rows: ~8 min on 2 quiet CPU cores
    python -m bench.bench_sft --contenders mlxsft-mlx,mlx-lm --rows 96 --json out.json
    python -m bench.bench_sft --contenders mlxsft-mlx --option compile=false      # one speed lever at a time

The job (``bench/peers/common.py: Job``): the same weights (mlxsft's unquantised fp32 conversion of the
model, read by every contender), the same rows (``bench/sft_data.py``: bundled conversations recombined to
60-650 tokens), LoRA rank 8 / alpha 16 on every linear layer of every block, batch 8, one epoch,
``max_seq_len`` 768 (no row is cut), AdamW lr 1e-3 cosine-decayed, loss on the last assistant turn of each
row. Each contender runs in its own process, one after the other: MLX contenders with the same OpenBLAS
preloaded (the one ``mlxsft`` itself uses), torch contenders without it (it slows torch ~10x).

Reported per contender: wall time (process spawn to adapters on disk: imports, model load, data preparation,
training, saving), training time (first step to adapters on disk), tokens/s (non-pad tokens of the epoch /
wall time, and / training time), CPU seconds of the process (less disturbed than wall time by other load on a
shared machine), peak resident memory of the process (read before validation), the final
validation loss (mean NLL per supervised token over the validation file, computed by the bench for every
contender alike), and MFU: the job's training FLOPs (``bench/flops.py``) / training time / the fp32 matmul
rate measured in the same process. Ratios: mlxsft-mlx against mlx-lm, mlxsft-torch against TRL.
The machine is shared: each run records the load average, and only ratios within one run mean much.
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

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = {  # name -> (runner module, engine)
    "mlxsft-mlx": ("bench.peers.mlxsft_mlx", "mlx"),
    "mlxsft-torch": ("bench.peers.mlxsft_torch", "torch"),
    "mlx-lm": ("bench.peers.mlx_lm_lora", "mlx"),
    "trl": ("bench.peers.trl_sft", "torch"),
}
PAIRS = (("mlxsft-mlx", "mlx-lm"), ("mlxsft-torch", "trl"))


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("mlx", "mlx-lm", "torch", "transformers", "peft", "trl"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def child_env(engine: str, cache: Path) -> dict[str, str]:
    from mlxsft.machine import find_openblas

    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    blas = find_openblas()
    if engine == "mlx" and blas and sys.platform.startswith("linux"):
        env["LD_PRELOAD"] = blas  # the same BLAS for every MLX contender
    env.update({"MLXSFT_NO_BLAS_REEXEC": "1", "MLXSFT_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))})
    return env


def data_profile(model_dir: Path, train_dir: Path, max_seq_len: int, cache: Path) -> dict:
    """Token statistics of the training rows as mlxsft tokenizes them (train_on: last)."""
    os.environ["MLXSFT_CACHE"] = str(cache)
    import numpy as np

    from mlxsft.config import DataConfig
    from mlxsft.data import prepare_split
    from mlxsft.models import load_tokenizer

    split = prepare_split(DataConfig(data=str(train_dir), train_on="last", max_seq_len=max_seq_len),
                          load_tokenizer(str(model_dir)), "train")
    lengths = np.array([len(e.input_ids) for e in split.examples])
    supervised = [int(e.loss_mask[1:].sum()) for e in split.examples]
    return {"rows": len(lengths), "tokens": int(lengths.sum()), "min": int(lengths.min()),
            "median": float(np.median(lengths)), "mean": float(lengths.mean()), "max": int(lengths.max()),
            "p10": float(np.percentile(lengths, 10)), "p90": float(np.percentile(lengths, 90)),
            "supervised_fraction": sum(supervised) / float(lengths.sum()),
            "rows_detail": [[int(n), s] for n, s in zip(lengths, supervised)]}


def run_contender(name: str, job: dict, work: Path, timeout_s: int) -> dict:
    from bench.peers.common import Job

    module, engine = CONTENDERS[name]
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = Job(**{**job, "out": str(folder / "run"), "started_at": 0.0})
    job_file, result_file, log_file = folder / "job.json", folder / "result.json", folder / "log.txt"
    result_file.unlink(missing_ok=True)
    load_before = load_average()
    spec.started_at = time.time()
    spec.save(job_file)
    with open(log_file, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", module, str(job_file), str(result_file)], cwd=ROOT,
                                env=child_env(engine, folder / "cache"), stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=timeout_s)
        finally:  # a timeout or Ctrl-C here must not leave a trainer running behind the bench
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proc.returncode != 0 or not result_file.is_file():
        tail = log_file.read_text()[-3000:]
        return {"name": name, "failed": True, "returncode": proc.returncode, "log_tail": tail}
    result = json.loads(result_file.read_text())
    result.update({"load_before": load_before, "load_after": load_average(), "log": str(log_file)})
    return result


def add_metrics(result: dict, profile: dict, flops: dict) -> None:
    if result.get("failed"):
        return
    result["tokens_per_s_wall"] = profile["tokens"] / result["wall_s"]
    result["tokens_per_s_train"] = profile["tokens"] / result["train_s"]
    result["train_flops_per_s"] = flops["total"] / result["train_s"]
    result["mfu"] = result["train_flops_per_s"] / result["matmul_peak_flops"]


def ratios(results: dict[str, dict]) -> list[dict]:
    out = []
    for ours, peer in PAIRS:
        a, b = results.get(ours), results.get(peer)
        if not a or not b or a.get("failed") or b.get("failed"):
            continue
        out.append({"ours": ours, "peer": peer, "wall": a["wall_s"] / b["wall_s"],
                    "train": a["train_s"] / b["train_s"], "cpu": a["cpu_s"] / b["cpu_s"],
                    "val_loss_delta_pct": 100 * (a["val_loss"] - b["val_loss"]) / b["val_loss"],
                    "peak_rss": a["peak_rss_gb"] / b["peak_rss_gb"]})
    return out


def print_report(report: dict) -> None:
    p = report["data"]
    print(f"\nmachine: {report['machine']}; load average {report['load_start']} at start")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"job: {report['job_summary']}")
    print(f"data: {p['rows']} rows, {p['tokens']} tokens (min {p['min']}, p10 {p['p10']:.0f}, median "
          f"{p['median']:.0f}, p90 {p['p90']:.0f}, max {p['max']}), supervised {100 * p['supervised_fraction']:.0f}%; "
          f"training FLOPs {report['flops']['total'] / 1e12:.2f} T")
    head = (f"{'contender':14}{'wall s':>9}{'train s':>9}{'CPU s':>9}{'tok/s wall':>11}{'tok/s train':>12}{'peak RSS GB':>12}"
            f"{'MLX peak GB':>12}{'val loss':>10}{'MFU':>7}{'load':>16}")
    print(head)
    for name, r in report["results"].items():
        if r.get("failed"):
            print(f"{name:14}FAILED (exit {r['returncode']}); log tail:\n{r['log_tail']}")
            continue
        mlx_peak = f"{r['mlx_peak_gb']:.2f}" if r.get("mlx_peak_gb") is not None else "-"
        print(f"{name:14}{r['wall_s']:9.1f}{r['train_s']:9.1f}{r['cpu_s']:9.1f}{r['tokens_per_s_wall']:11.1f}"
              f"{r['tokens_per_s_train']:12.1f}{r['peak_rss_gb']:12.2f}{mlx_peak:>12}{r['val_loss']:10.4f}"
              f"{100 * r['mfu']:6.1f}%{r['load_before'] + ' ':>16}")
    for name, r in report["results"].items():
        plan = (r.get("extra") or {}).get("plan_gb")
        if plan and not r.get("failed"):
            measured = r["mlx_peak_gb"] if r.get("mlx_peak_gb") else r["peak_rss_gb"]
            print(f"{name}: memory plan {plan:.2f} GB vs measured {measured:.2f} GB "
                  f"({'MLX peak' if r.get('mlx_peak_gb') else 'peak RSS'})")
    for q in report["ratios"]:
        print(f"{q['ours']} / {q['peer']}: wall {q['wall']:.2f}x, train {q['train']:.2f}x, CPU {q['cpu']:.2f}x, "
              f"val loss {q['val_loss_delta_pct']:+.2f}%, peak RSS {q['peak_rss']:.2f}x")


def markdown_table(report: dict) -> str:
    """The results as a Markdown table (for the README)."""
    lines = ["| contender | wall s | CPU s | tokens/s (wall) | peak RSS GB | val loss | MFU |",
             "|---|---|---|---|---|---|---|"]
    for name, r in report["results"].items():
        if r.get("failed"):
            lines.append(f"| {name} | failed | | | | | |")
            continue
        lines.append(f"| {name} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['tokens_per_s_wall']:.1f} | "
                     f"{r['peak_rss_gb']:.2f} | {r['val_loss']:.4f} | {100 * r['mfu']:.1f}% |")
    for q in report["ratios"]:
        lines.append(f"| **{q['ours']} / {q['peer']}** | {q['wall']:.2f}x | {q['cpu']:.2f}x | | {q['peak_rss']:.2f}x | "
                     f"{q['val_loss_delta_pct']:+.2f}% | |")
    return "\n".join(lines) + "\n"


def parse_options(texts: list[str], names: list[str]) -> dict[str, dict]:
    """``[CONTENDER:]KEY=VALUE`` -> per-contender config fields; no prefix means both mlxsft contenders."""
    import yaml

    out: dict[str, dict] = {n: {} for n in names}
    for text in texts:
        target, _, assignment = text.rpartition(":") if ":" in text.split("=", 1)[0] else ("", "", text)
        key, _, value = assignment.partition("=")
        for name in ([target] if target else [n for n in names if n.startswith("mlxsft")]):
            out.setdefault(name, {})[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma list of {', '.join(CONTENDERS)}")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--rows", type=int, default=32, help="training rows (a multiple of --batch-size)")
    ap.add_argument("--valid-rows", type=int, default=16)
    ap.add_argument("--max-seq-len", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--option", action="append", default=[], metavar="[CONTENDER:]KEY=VALUE",
                    help="a config field for one contender (mlx-lm:grad_checkpoint=true) or, without a prefix, "
                         "for both mlxsft contenders (compile=false); repeatable")
    ap.add_argument("--work", type=Path, default=None, help="folder for data, runs and logs (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="write the report here (default: WORK/report.json)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per contender")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        ap.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")

    from bench.flops import ModelShape, training_flops
    from bench.sft_data import write_dataset
    from mlxsft.models import mlx_model_path

    work = args.work or Path(tempfile.mkdtemp(prefix="mlxsft-bench-"))
    model_dir = mlx_model_path(args.model)  # unquantised fp32 safetensors: every contender reads these weights
    data = work / "data"
    write_dataset(data / "src", args.rows, args.valid_rows)
    (data / "train").mkdir(parents=True, exist_ok=True)
    (data / "valid").mkdir(parents=True, exist_ok=True)
    (data / "src" / "train.jsonl").replace(data / "train" / "train.jsonl")
    (data / "src" / "valid.jsonl").replace(data / "valid" / "valid.jsonl")
    profile = data_profile(model_dir, data / "train", args.max_seq_len, work / "profile-cache")
    shape = ModelShape.from_config(json.loads((model_dir / "config.json").read_text()))
    flops = training_flops(shape, [tuple(r) for r in profile["rows_detail"]], method="lora", rank=args.rank)
    job = {"model": str(model_dir), "train_dir": str(data / "train"), "valid_dir": str(data / "valid"), "out": "",
           "rank": args.rank, "alpha": 2.0 * args.rank, "learning_rate": args.learning_rate,
           "batch_size": args.batch_size, "epochs": args.epochs, "max_seq_len": args.max_seq_len,
           "options": {}}
    options = parse_options(args.option, names)
    from mlxsft.machine import cpu_description, find_openblas

    report = {"machine": f"{os.cpu_count()}-core {platform.machine()} {platform.system()} ({cpu_description()}), "
                         f"python {platform.python_version()}, MLX BLAS: {find_openblas() or 'bundled reference'}",
              "versions": versions(), "load_start": load_average(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "job_summary": f"{args.model}, LoRA r{args.rank}/alpha {2 * args.rank} all linear layers of all "
                             f"blocks, batch {args.batch_size}, {args.epochs} epoch, max_seq_len {args.max_seq_len}, "
                             f"lr {args.learning_rate} cosine, loss on the last assistant turn",
              "job": job, "options": options, "data": profile, "flops": flops, "results": {}}
    for name in names:
        print(f"[{time.strftime('%H:%M:%S')}] {name} ... (load {load_average()})", flush=True)
        result = run_contender(name, {**job, "options": options.get(name, {})}, work, args.timeout)
        add_metrics(result, profile, flops)
        report["results"][name] = result
        if not result.get("failed"):
            print(f"    wall {result['wall_s']:.1f}s, train {result['train_s']:.1f}s, val loss {result['val_loss']:.4f}",
                  flush=True)
    report["ratios"] = ratios(report["results"])
    report["data"] = {k: v for k, v in profile.items() if k != "rows_detail"}
    out = args.json or work / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    out.with_suffix(".md").write_text(markdown_table(report))
    print_report(report)
    print(f"report: {out}")
    return report


if __name__ == "__main__":
    main()
