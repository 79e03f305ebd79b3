"""Bench contender: TRL's ``SFTTrainer`` with a peft LoRA, as its documentation sets it up (CPU, fp32).

    python -m bench.peers.trl_sft JOB.json RESULT.json     # run by bench/bench_sft.py, no BLAS preload

Rows become TRL's conversational prompt-completion format (prompt = every message before the last
assistant turn, completion = that turn), so TRL's default ``completion_only_loss`` supervises exactly what
mlx-lm's ``mask_prompt`` and mlxsft's ``train_on: last`` do. LoRA ``r``/``lora_alpha`` on ``all-linear``,
AdamW (torch) without weight decay, cosine decay, clipping at 1.0 (TRL's default, as mlxsft), TRL's
defaults elsewhere (random batches padded to their longest row, full-vocabulary logits).
``--option trl:micro_batch_size=2`` runs passes of 2 rows with ``gradient_accumulation_steps`` making up the
job's batch (TRL's own lever, for a fair comparison with mlxsft's micro-batches).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.peers.common import Clock, Job, finish, matmul_peak_torch, peer_passes, val_loss_torch


def main(job_path: str, result_path: str) -> None:
    job = Job.load(job_path)
    clock = Clock(job)
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in (Path(job.train_dir) / "train.jsonl").read_text().splitlines() if line]
    data = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(job.model)
    options, micro, accum = peer_passes(job)
    config = SFTConfig(
        output_dir=job.out, per_device_train_batch_size=micro, gradient_accumulation_steps=accum,
        num_train_epochs=job.epochs, learning_rate=job.learning_rate, lr_scheduler_type="cosine",
        warmup_steps=job.warmup_steps, weight_decay=0.0, max_grad_norm=1.0, max_length=job.max_seq_len,
        optim="adamw_torch", logging_steps=5, save_strategy="no", eval_strategy="no", report_to="none",
        seed=job.seed, data_seed=job.seed, use_cpu=True, bf16=False, fp16=False, **options)
    peft_config = LoraConfig(r=job.rank, lora_alpha=job.alpha, lora_dropout=0.0, target_modules="all-linear",
                             task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=job.model, args=config, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft_config)
    clock.start()
    output = trainer.train()
    trainer.save_model(job.out)
    clock.trained()
    finish(result_path, clock, name="trl", engine="torch", peak_flops=matmul_peak_torch, steps=output.global_step,
           evaluate=lambda: val_loss_torch(trainer.model, job),
           extra={"trl_train_runtime_s": output.metrics.get("train_runtime")})


if __name__ == "__main__":
    main(*sys.argv[1:3])
