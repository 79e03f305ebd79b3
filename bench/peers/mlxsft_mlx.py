"""Bench contender: mlxsft on MLX, through ``mlxsft.train.run_training`` exactly as ``mlxsft train`` runs it.

    python -m bench.peers.mlxsft_mlx JOB.json RESULT.json      # run by bench/bench_sft.py, OpenBLAS preloaded

``job.options`` may hold mlxsft config fields (``{"compile": false}``, ``{"pack": true}``) to measure one
speed lever at a time.
"""

from __future__ import annotations

import sys

from bench.peers.common import Clock, Job, finish, matmul_peak_mlx, val_loss_mlx


def mlxsft_overrides(job: Job, backend: str) -> dict:
    """The job as mlxsft config fields (also used by the torch contender)."""
    return {"model": job.model, "data": job.train_dir, "backend": backend, "method": job.method,
            "rank": job.rank, "alpha": job.alpha, "target_modules": ["all-linear"], "num_layers": -1,
            "learning_rate": job.learning_rate, "optimizer": "adamw", "weight_decay": 0.0,
            "lr_schedule": "cosine", "warmup": job.warmup_steps, "batch_size": job.batch_size,
            "epochs": job.epochs, "max_seq_len": job.max_seq_len, "train_on": "last", "seed": job.seed,
            "compare": False, "eval_every": 0, "save_every": 0, "report_every": 5, "out": job.out,
            **job.options}


def main(job_path: str, result_path: str) -> None:
    job = Job.load(job_path)
    clock = Clock(job)
    import mlx.core as mx

    from mlxsft.config import load_config
    from mlxsft.train import run_training

    events: dict = {}

    def on_event(event: str, payload: dict) -> None:
        if event == "start":
            clock.start()
        elif event == "plan":
            events["plan_gb"] = payload["plan"].total_gb  # what `mlxsft train --plan` prints

    outcome = run_training(load_config(None, mlxsft_overrides(job, "mlx")), callback=on_event)
    clock.trained()  # adapters written by the trainer's final save
    mlx_peak = mx.get_peak_memory() / 1e9
    finish(result_path, clock, name="mlxsft-mlx", engine="MLX", peak_flops=matmul_peak_mlx, mlx_peak_gb=mlx_peak,
           steps=outcome.result.steps, evaluate=lambda: val_loss_mlx(outcome.model, job),
           extra={"trainer_tokens_per_sec": outcome.result.tokens_per_sec,
                  "trained_tokens": outcome.result.trained_tokens, "plan_gb": events.get("plan_gb")})


if __name__ == "__main__":
    main(*sys.argv[1:3])
