"""``mlxsft train`` as a library call: run folder, data, model, memory plan, the loop, the report.

    from mlxsft.config import load_config
    from mlxsft.train import run_training
    outcome = run_training(load_config("configs/default.yaml"), callback=print_event)

Backend-neutral orchestration, written once for both backends; the model-specific parts sit behind
``mlxsft.backends.base.Backend`` and the loops in ``mlxsft/backends/<name>/trainer.py``.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from mlxsft.config import Config, load_config
from mlxsft.data.batching import CPU_MICRO_BATCH_TOKENS, micro_batch_shape
from mlxsft.errors import ConfigError, MlxsftError, RunError
from mlxsft.runs import atomic_write_text, claim_run_dir, default_run_dir

Callback = Callable[[str, dict], None]


@dataclass
class TrainOutcome:
    run_dir: Path
    result: Any = None  # TrainResult
    plan: Any = None  # MemoryPlan
    compare: Any = None  # CompareReport
    planned_only: bool = False
    model: Any = None  # the trained model (MLX module), for library callers


def find_latest_run(root: Path = Path("runs")) -> Path:
    runs = sorted((p for p in root.glob("*") if (p / "checkpoints" / "latest").is_file()),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RunError(f"{root}: no run to resume", hint="pass --resume RUN_DIR")
    return runs[-1]


def resolve_resume(resume: Optional[str], overrides: dict[str, Any], config_file: Optional[str]) -> tuple[Config, Path]:
    """The config of a run being resumed: its saved config.yaml plus the flags given now."""
    run_dir = find_latest_run() if resume in ("", "latest", None) else Path(resume)
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise RunError(f"{run_dir}: not a run folder (no config.yaml)")
    if config_file:
        raise ConfigError("--config cannot be combined with --resume (the run's config.yaml is used)")
    cfg = load_config(saved, overrides)
    cfg.train.out = str(run_dir)
    return cfg, run_dir


def _backend(cfg: Config) -> str:
    if cfg.train.backend == "auto":
        from mlxsft.doctor import pick_backend

        return pick_backend()[0]
    return cfg.train.backend


def run_training(cfg: Config, *, resume: bool = False, overwrite: bool = False, plan_only: bool = False,
                 callback: Optional[Callback] = None) -> TrainOutcome:
    """Train ``cfg`` on its backend; the steps read top to bottom, the backend does the model-specific parts."""
    from mlxsft.backends.base import get_backend
    from mlxsft.data import prepare_split, resolve_chat_template

    emit = callback or (lambda e, p: None)
    backend = get_backend(_backend(cfg), cfg, emit)
    world = backend.world  # several processes under mlx.launch / torchrun (mlxsft/distributed.py)
    world.check_batch_size(cfg.train.batch_size)
    if not world.is_main:
        emit = lambda e, p: None  # noqa: E731  (rank 0 alone reports)
    if world.size > 1:
        emit("message", {"text": f"{world.size} processes: each takes {cfg.train.batch_size // world.size} of the "
                                 f"{cfg.train.batch_size} rows of every micro-batch"})
    run_dir = Path(cfg.train.out) if cfg.train.out else default_run_dir(cfg.train.name)
    cfg.train.out = str(run_dir)
    if cfg.train.micro_batch_tokens is None:  # recorded in config.yaml, so a resume cuts batches alike
        cfg.train.micro_batch_tokens = 0 if backend.on_gpu() else CPU_MICRO_BATCH_TOKENS
        if cfg.train.micro_batch_tokens:
            emit("message", {"text": f"each batch runs in micro-batches of at most {cfg.train.micro_batch_tokens} "
                                     f"tokens (faster and leaner on a CPU, same update; --micro-batch-tokens 0: "
                                     f"whole batches)"})

    loaded = backend.load()
    hf_tok = loaded.hf_tokenizer
    if resume and (run_dir / "chat_template.jinja").is_file():
        template = (run_dir / "chat_template.jinja").read_text()  # exactly what the run trained with
    else:
        template = resolve_chat_template(hf_tok, cfg.data.chat_template)
    train = prepare_split(cfg.data, hf_tok, cfg.data.train_split, chat_template=template)
    valid = maybe_split(cfg, hf_tok, cfg.data.valid_split, template)
    emit("data", {"train": train.stats, "valid": valid.stats if valid else None})

    backend.make_trainable(loaded)
    trainable, total = backend.count_parameters(loaded.model)
    longest = cfg.data.max_seq_len if cfg.data.pack else max((len(e.input_ids) for e in train.examples), default=1)
    rows, length = micro_batch_shape(min(longest, cfg.data.max_seq_len), cfg.train.batch_size // world.size,
                                     cfg.train.micro_batch_tokens)
    plan = backend.memory_plan(loaded, rows, length, float(train.stats.get("supervised_fraction") or 1.0))
    machine_gb = backend.memory_bytes() / 1e9
    emit("plan", {"plan": plan, "machine_gb": machine_gb, "trainable": trainable, "total": total,
                  "method": cfg.lora.method, "run_dir": str(run_dir)})
    if plan_only:
        return TrainOutcome(run_dir=run_dir, plan=plan, planned_only=True)
    if machine_gb and plan.total_gb > machine_gb and not cfg.train.force:
        raise RunError(f"estimated peak memory {plan.total_gb:.1f} GB exceeds this machine's {machine_gb:.1f} GB",
                       hint="lower --batch-size or --max-seq-len, use --grad-checkpoint, or pass --force")
    backend.before_training()

    # rank 0 alone locks and writes the run folder; the other ranks only read it, to resume
    with claim_run_dir(run_dir, resume=resume, overwrite=overwrite) if world.is_main else nullcontext():
        if world.is_main and not resume:
            cfg.save(run_dir / "config.yaml")
            atomic_write_text(run_dir / "chat_template.jinja", template)
            atomic_write_text(run_dir / "base_model.txt", f"{cfg.model.model}\n{loaded.weights_path}\n")
            backend.write_run_files(run_dir, loaded)
        result = backend.trainer(loaded, run_dir).fit(train, valid, resume=resume)
        from mlxsft.plot import plot_loss
        from mlxsft.runs import MetricsLog

        if world.is_main:
            plot_loss(MetricsLog(run_dir / "metrics.jsonl").read(), run_dir / "loss.png")
    outcome = TrainOutcome(run_dir=run_dir, result=result, plan=plan, model=loaded.model)
    if cfg.train.compare and not result.interrupted and world.is_main:
        if world.sharded:  # generating on rank 0 alone would wait for the other ranks' shards forever
            emit("message", {"text": f"before/after table skipped: the weights are sharded over {world.size} "
                                     f"processes (FSDP); `mlxsft eval --adapter {run_dir} --compare` gives it"})
        else:
            outcome.compare = compare_base_and_tuned(cfg, backend.answerers(loaded, template), emit)
    return outcome


def maybe_split(cfg: Config, hf_tok: Any, split: str, template: str) -> Any:
    from mlxsft.data import prepare_split

    try:
        return prepare_split(cfg.data, hf_tok, split, chat_template=template)
    except MlxsftError as e:
        if "not found" in str(e) or "no split" in str(e).lower():
            return None
        raise


def compare_base_and_tuned(cfg: Config, answerers: dict[str, Any], emit: Callback) -> Any:
    """Ask the held-out questions of the base and the tuned model; returns a CompareReport (compare.json)."""
    from mlxsft.evaluate import compare_batched, load_questions
    from mlxsft.runs import atomic_write_json

    t = cfg.train
    questions = load_questions(t.compare_questions, limit=t.compare_limit)
    report = compare_batched(answerers, questions,
                             progress=lambda d, n: emit("compare_progress", {"done": d, "total": n}))
    atomic_write_json(Path(t.out) / "compare.json", report.to_dict())
    emit("compare", {"report": report})
    return report
