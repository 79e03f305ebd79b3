"""``mlxsft train``: supervised fine-tuning (LoRA / DoRA / QLoRA / full) on MLX.

    mlxsft train                                  # the embedded demo: LoRA on SmolLM2-135M-Instruct
    mlxsft train --config configs/lora.yaml --data my.jsonl --iters 200
    mlxsft train --resume runs/sft-20261129-0712  # continue an interrupted run exactly
    mlx.launch --hostfile hosts.json -- mlxsft train ...          # across Macs (README: Training across machines)
    torchrun --nproc-per-node 2 -m mlxsft train --backend torch   # across GPUs
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from mlxsft.cli.options import config_options, overrides_from


@click.command(context_settings={"max_content_width": 110})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--resume", "resume", is_flag=False, flag_value="latest", default=None, metavar="[RUN]",
              help="Continue a run from its last checkpoint (default: the newest run in runs/).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out folder.")
@click.option("--plan", "plan_only", is_flag=True, help="Print the memory estimate and exit.")
@click.option("--accept-changes", is_flag=True,
              help="Resume even though the data or the model changed since the checkpoint.")
@config_options()
def train(config_file: str | None, resume: str | None, overwrite: bool, plan_only: bool, accept_changes: bool,
          **kwargs: object) -> None:
    """Fine-tune a model on chat data (defaults: embedded SmolLM2 + bundled dataset)."""
    from mlxsft.cli.ui.train import TrainView
    from mlxsft.config import RemoteCodeFromFile, load_config
    from mlxsft.distributed import launch_rank
    from mlxsft.errors import ConfigError
    from mlxsft.train import resolve_resume, run_training

    overrides = overrides_from(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RemoteCodeFromFile)  # a file asking for Hub code stops here, before any work
        try:
            if resume is not None:
                cfg, _ = resolve_resume(resume, overrides, config_file)
            else:
                cfg = load_config(config_file, overrides)
        except RemoteCodeFromFile as e:
            raise ConfigError(f"{e.path}: trust_remote_code: true is not taken from a file (a shared or saved "
                              f"config cannot turn on model code from the Hub)",
                              hint="pass --trust-remote-code to allow it (again when resuming a run started "
                                   "with it), or --no-trust-remote-code to start without it") from None
    from mlxsft.backends import registry

    registry.choose_blas(cfg.train.backend)  # OpenBLAS for MLX, as the resolved config (file, flags, run) says
    if launch_rank() > 0:  # started by mlx.launch / torchrun: rank 0 alone shows progress and results
        run_training(cfg, resume=resume is not None, overwrite=overwrite, plan_only=plan_only,
                     config_file=config_file, accept_changes=accept_changes)
        return
    view = TrainView(cfg)
    try:
        with view:
            outcome = run_training(cfg, resume=resume is not None, overwrite=overwrite, plan_only=plan_only,
                                   callback=view.on_event, config_file=config_file, accept_changes=accept_changes)
    except KeyboardInterrupt:  # a second Ctrl-C in the loop (the first checkpoints and stops), or one before it
        if not plan_only and cfg.train.out:
            view.stopped_at_once(Path(cfg.train.out))
        sys.exit(130)
    view.finish(outcome)
