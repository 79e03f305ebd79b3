"""Bench contender: mlxsft on torch (transformers + peft, CPU), through ``mlxsft.train.run_training``.

    python -m bench.peers.mlxsft_torch JOB.json RESULT.json     # run by bench/bench_sft.py, no BLAS preload

The same config fields as the MLX contender with ``backend: torch``; ``job.options`` can switch levers.
"""

from __future__ import annotations

import sys

from bench.peers.common import Clock, Job, finish, matmul_peak_torch, val_loss_torch
from bench.peers.mlxsft_mlx import mlxsft_overrides


def main(job_path: str, result_path: str) -> None:
    job = Job.load(job_path)
    clock = Clock(job)
    from mlxsft.config import load_config
    from mlxsft.train import run_training

    events: dict = {}

    def on_event(event: str, payload: dict) -> None:
        if event == "start":
            clock.start()
        elif event == "plan":
            events["plan_gb"] = payload["plan"].total_gb

    overrides = {"device": "cpu", **mlxsft_overrides(job, "torch")}
    outcome = run_training(load_config(None, overrides), callback=on_event)
    clock.trained()
    finish(result_path, clock, name="mlxsft-torch", engine="torch", peak_flops=matmul_peak_torch,
           steps=outcome.result.steps, evaluate=lambda: val_loss_torch(outcome.model, job),
           extra={"trainer_tokens_per_sec": outcome.result.tokens_per_sec,
                  "trained_tokens": outcome.result.trained_tokens, "plan_gb": events.get("plan_gb")})


if __name__ == "__main__":
    main(*sys.argv[1:3])
