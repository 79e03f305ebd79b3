"""Bench contender: ``mlx_lm.lora``, driven the way its CLI drives itself (``mlx_lm.lora.train_model``).

    python -m bench.peers.mlx_lm_lora JOB.json RESULT.json     # run by bench/bench_sft.py, OpenBLAS preloaded

The CLI's own ``run()`` is mirrored step by step (``mlx_lm.load``, ``create_dataset``, ``train_model``) with the
bench job as its config: LoRA on every linear layer of all layers (``num_layers: -1``), ``scale = alpha / rank``,
AdamW without weight decay and with bias correction (as mlxsft), a cosine decay over one epoch
(``iters = rows // batch_size``, mlx-lm's batches are whole), ``mask_prompt: true`` (loss on the last assistant
turn, the bench's ``train_on: last``). No validation during training (the bench validates every contender
afterwards the same way); no gradient clipping (mlx-lm has none). ``--option mlx-lm:micro_batch_size=2`` runs
passes of 2 rows with ``grad_accumulation_steps`` making up the job's batch (mlx-lm's own lever, for a fair
comparison with mlxsft's micro-batches).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

from bench.peers.common import Clock, Job, finish, matmul_peak_mlx, peer_passes, val_loss_mlx


def main(job_path: str, result_path: str) -> None:
    job = Job.load(job_path)
    clock = Clock(job)
    import mlx.core as mx
    import numpy as np
    from mlx_lm.lora import CONFIG_DEFAULTS, train_model
    from mlx_lm.tuner.datasets import create_dataset
    from mlx_lm.utils import load

    rows = [json.loads(line) for line in (Path(job.train_dir) / "train.jsonl").read_text().splitlines() if line]
    options, micro, accum = peer_passes(job)
    iters = len(rows) // micro * job.epochs  # mlx-lm counts passes; its optimizer (and schedule) steps per `accum`
    steps = iters // accum
    args = types.SimpleNamespace(**{
        **CONFIG_DEFAULTS, "model": job.model, "train": True, "fine_tune_type": "lora", "optimizer": "adamw",
        "optimizer_config": {"adamw": {"weight_decay": 0.0, "bias_correction": True}},
        "num_layers": -1, "batch_size": micro, "grad_accumulation_steps": accum, "iters": iters,
        "learning_rate": job.learning_rate,
        "lr_schedule": {"name": "cosine_decay", "arguments": [job.learning_rate, steps, 0.0],
                        "warmup": job.warmup_steps},
        "lora_parameters": {"rank": job.rank, "dropout": 0.0, "scale": job.alpha / job.rank},
        "mask_prompt": True, "adapter_path": job.out, "save_every": 10**9, "steps_per_eval": 10**9,
        "steps_per_report": 5, "max_seq_length": job.max_seq_len, "seed": job.seed, "trust_remote_code": False,
        **options})
    np.random.seed(args.seed)
    model, tokenizer = load(args.model)
    train_set = create_dataset(rows, tokenizer, args)
    clock.start()
    train_model(args, model, train_set, [])  # an empty validation set: no validation pass during training
    clock.trained()  # adapters.safetensors written at the end of mlx_lm's train()
    mlx_peak = mx.get_peak_memory() / 1e9
    finish(result_path, clock, name="mlx-lm", engine="MLX", peak_flops=matmul_peak_mlx, mlx_peak_gb=mlx_peak,
           steps=steps, evaluate=lambda: val_loss_mlx(model, job))


if __name__ == "__main__":
    main(*sys.argv[1:3])
