"""``mlxsft train`` as a library call: run folder, data, model, memory plan, the loop, the report.

    from mlxsft.config import load_config
    from mlxsft.train import run_training
    outcome = run_training(load_config("configs/default.yaml"), callback=print_event)

Backend-neutral orchestration; the loop itself lives in ``mlxsft/backends/<name>/trainer.py``.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from mlxsft.config import Config, load_config
from mlxsft.errors import ConfigError, MlxsftError, RunError
from mlxsft.runs import RunLock, atomic_write_text, default_run_dir, prepare_run_dir

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
    emit = callback or (lambda e, p: None)
    backend = _backend(cfg)
    if backend == "torch":
        from mlxsft.backends.torch.run import run_training_torch

        return run_training_torch(cfg, resume=resume, overwrite=overwrite, plan_only=plan_only, callback=callback)

    import mlx.core as mx

    from mlxsft.backends.mlx.adapters import count_parameters, make_trainable
    from mlxsft.backends.mlx.memory import estimate
    from mlxsft.backends.mlx.trainer import MLXTrainer
    from mlxsft.data import load_conversations, prepare_split, resolve_chat_template  # noqa: F401
    from mlxsft.models import load_mlx, resolve_model
    from mlxsft.platform import total_memory_bytes

    run_dir = Path(cfg.train.out) if cfg.train.out else default_run_dir(cfg.train.name)
    cfg.train.out = str(run_dir)

    source = resolve_model(cfg.model.model)
    emit("message", {"text": f"model {source.name} ({source.kind}: {source.path})"})
    model, tokenizer, mlx_path = load_mlx(cfg.model.model, dtype=cfg.model.dtype, quantize=cfg.model.quantize,
                                          group_size=cfg.model.group_size,
                                          progress=lambda stage, frac: emit("progress", {"stage": stage, "fraction": frac}))
    hf_tok = getattr(tokenizer, "_tokenizer", tokenizer)

    if resume and (run_dir / "chat_template.jinja").is_file():
        template = (run_dir / "chat_template.jinja").read_text()  # exactly what the run trained with
    else:
        template = resolve_chat_template(hf_tok, cfg.data.chat_template)
    train = prepare_split(cfg.data, hf_tok, cfg.data.train_split, chat_template=template)
    valid = maybe_split(cfg, hf_tok, cfg.data.valid_split, template)
    emit("data", {"train": train.stats, "valid": valid.stats if valid else None})

    mx.random.seed(cfg.train.seed)  # LoRA init is part of the seeded job
    adapter_cfg = make_trainable(model, cfg.lora)
    trainable, total = count_parameters(model)
    vocab = int(getattr(getattr(model, "args", None), "vocab_size", 0) or len(hf_tok))
    longest = cfg.data.max_seq_len if cfg.data.pack else max((len(e.input_ids) for e in train.examples), default=1)
    plan = estimate(model, cfg, cfg.train.batch_size * min(longest, cfg.data.max_seq_len), vocab,
                    float(train.stats.get("supervised_fraction") or 1.0))
    machine_gb = total_memory_bytes() / 1e9
    emit("plan", {"plan": plan, "machine_gb": machine_gb, "trainable": trainable, "total": total,
                  "method": cfg.lora.method, "run_dir": str(run_dir)})
    if plan_only:
        return TrainOutcome(run_dir=run_dir, plan=plan, planned_only=True)
    if machine_gb and plan.total_gb > machine_gb and not cfg.train.force:
        raise RunError(f"estimated peak memory {plan.total_gb:.1f} GB exceeds this machine's {machine_gb:.1f} GB",
                       hint="lower --batch-size or --max-seq-len, use --grad-checkpoint, or pass --force")
    _set_metal_limits(mx)

    prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    with RunLock(run_dir):
        if not resume:
            cfg.save(run_dir / "config.yaml")
            atomic_write_text(run_dir / "chat_template.jinja", template)
            (run_dir / "base_model.txt").write_text(f"{cfg.model.model}\n{mlx_path}\n")
        trainer = MLXTrainer(cfg, model, tokenizer, run_dir, adapter_cfg, emit)
        result = trainer.fit(train, valid, resume=resume)
        from mlxsft.plot import plot_loss
        from mlxsft.runs import MetricsLog

        plot_loss(MetricsLog(run_dir / "metrics.jsonl").read(), run_dir / "loss.png")
    outcome = TrainOutcome(run_dir=run_dir, result=result, plan=plan, model=model)
    if cfg.train.compare and not result.interrupted:
        outcome.compare = compare_base_and_tuned(cfg, model, tokenizer, template, emit)
    return outcome


def maybe_split(cfg: Config, hf_tok: Any, split: str, template: str) -> Any:
    from mlxsft.data import prepare_split

    try:
        return prepare_split(cfg.data, hf_tok, split, chat_template=template)
    except MlxsftError as e:
        if "not found" in str(e) or "no split" in str(e).lower():
            return None
        raise


def compare_base_and_tuned(cfg: Config, tuned: Any, tokenizer: Any, template: str, emit: Callback) -> Any:
    """Ask the held-out questions of the base and the tuned model; returns a CompareReport."""
    from functools import partial

    from mlxsft.backends.mlx.generate import generate_answers_batch
    from mlxsft.evaluate import compare_batched, load_questions
    from mlxsft.models import load_mlx

    t = cfg.train
    questions = load_questions(t.compare_questions, limit=t.compare_limit)
    base, _, _ = load_mlx(cfg.model.model, dtype=cfg.model.dtype, quantize=cfg.model.quantize,
                          group_size=cfg.model.group_size)
    kw = dict(template=template, template_kwargs=cfg.data.chat_template_kwargs, max_tokens=t.compare_max_tokens)
    tuned.eval()
    report = compare_batched({"base": partial(generate_answers_batch, base, tokenizer, **kw),
                              "tuned": partial(generate_answers_batch, tuned, tokenizer, **kw)},
                             questions, progress=lambda d, n: emit("compare_progress", {"done": d, "total": n}))
    from mlxsft.runs import atomic_write_json

    atomic_write_json(Path(t.out) / "compare.json", report.to_dict())
    emit("compare", {"report": report})
    return report


def _set_metal_limits(mx: Any) -> None:
    """On Metal, wire the model's memory and keep the buffer cache bounded (no-op on CPU)."""
    try:
        if not mx.metal.is_available():
            return
        info = mx.metal.device_info()
        mx.set_wired_limit(int(info["max_recommended_working_set_size"]))
        mx.set_cache_limit(int(info["max_recommended_working_set_size"] // 4))
    except Exception:
        pass
