"""``mlxsft train --backend torch`` as a library call: the torch twin of ``mlxsft.train.run_training``.

    from mlxsft.config import load_config
    from mlxsft.backends.torch.run import run_training_torch
    outcome = run_training_torch(load_config("configs/default.yaml", {"backend": "torch"}), callback=print_event)

Same run folder, data (``mlxsft.data``), events, memory plan, metrics, loss.png and before/after table as
the MLX path; the model comes through transformers, adapters through peft. The run folder also gets
``run_info.json`` (``"backend": "torch"``) and, for LoRA/DoRA, PEFT's adapter files in its root.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Optional

from mlxsft.config import Config
from mlxsft.errors import ConfigError, RunError
from mlxsft.runs import RunLock, atomic_write_json, atomic_write_text, default_run_dir, prepare_run_dir
from mlxsft.train import Callback, TrainOutcome, maybe_split


def run_training_torch(cfg: Config, *, resume: bool = False, overwrite: bool = False, plan_only: bool = False,
                       callback: Optional[Callback] = None) -> TrainOutcome:
    emit = callback or (lambda e, p: None)
    if cfg.model.quantize:
        raise ConfigError("quantize: the torch backend trains unquantised weights",
                          hint="use --backend mlx for QLoRA, or drop --quantize")
    import torch

    from mlxsft.backends.torch.adapters import count_parameters, make_trainable
    from mlxsft.backends.torch.device import device_memory_bytes, pick_device
    from mlxsft.backends.torch.memory import estimate
    from mlxsft.backends.torch.model import load_model, write_run_info
    from mlxsft.backends.torch.trainer import TorchTrainer
    from mlxsft.data import prepare_split, resolve_chat_template

    device = pick_device(getattr(cfg.train, "device", "auto"), cfg.model.dtype)
    for note in device.notes:
        emit("message", {"text": note})
    run_dir = Path(cfg.train.out) if cfg.train.out else default_run_dir(cfg.train.name)
    cfg.train.out = str(run_dir)

    model, hf_tok, source = load_model(cfg.model.model, device, trust_remote_code=cfg.model.trust_remote_code)
    emit("message", {"text": f"model {source.name} ({source.kind}: {source.path}) on torch {device.device}, "
                             f"{str(device.param_dtype).removeprefix('torch.')}"})

    if resume and (run_dir / "chat_template.jinja").is_file():
        template = (run_dir / "chat_template.jinja").read_text()  # exactly what the run trained with
    else:
        template = resolve_chat_template(hf_tok, cfg.data.chat_template)
    train = prepare_split(cfg.data, hf_tok, cfg.data.train_split, chat_template=template)
    valid = maybe_split(cfg, hf_tok, cfg.data.valid_split, template)
    emit("data", {"train": train.stats, "valid": valid.stats if valid else None})

    torch.manual_seed(cfg.train.seed)  # LoRA init is part of the seeded job
    model = make_trainable(model, cfg.lora)
    trainable, total = count_parameters(model)
    vocab = int(getattr(model.config, "vocab_size", 0) or len(hf_tok))
    plan = estimate(model, cfg, cfg.train.batch_size * cfg.data.max_seq_len, vocab)
    machine_gb = device_memory_bytes(device) / 1e9
    emit("plan", {"plan": plan, "machine_gb": machine_gb, "trainable": trainable, "total": total,
                  "method": cfg.lora.method, "run_dir": str(run_dir)})
    if plan_only:
        return TrainOutcome(run_dir=run_dir, plan=plan, planned_only=True)
    if machine_gb and plan.total_gb > machine_gb and not cfg.train.force:
        raise RunError(f"estimated peak memory {plan.total_gb:.1f} GB exceeds this device's {machine_gb:.1f} GB",
                       hint="lower --batch-size or --max-seq-len, use --grad-checkpoint, or pass --force")

    prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    with RunLock(run_dir):
        if not resume:
            cfg.save(run_dir / "config.yaml")
            atomic_write_text(run_dir / "chat_template.jinja", template)
            (run_dir / "base_model.txt").write_text(f"{cfg.model.model}\n{source.path}\n")
            write_run_info(run_dir, base_model=cfg.model.model, method=cfg.lora.method)
        trainer = TorchTrainer(cfg, model, hf_tok, run_dir, device, emit)
        result = trainer.fit(train, valid, resume=resume)
        from mlxsft.plot import plot_loss
        from mlxsft.runs import MetricsLog

        plot_loss(MetricsLog(run_dir / "metrics.jsonl").read(), run_dir / "loss.png")
    outcome = TrainOutcome(run_dir=run_dir, result=result, plan=plan, model=model)
    if cfg.train.compare and not result.interrupted:
        outcome.compare = compare_base_and_tuned(cfg, model, hf_tok, template, device, emit)
    return outcome


def compare_base_and_tuned(cfg: Config, tuned: Any, hf_tok: Any, template: str, device: Any,
                           emit: Callback) -> Any:
    """Ask the held-out questions of the base and the tuned model; returns a CompareReport.

    With an adapter the base is the same model with the adapter switched off (no second copy in
    memory); after full fine-tuning the base is loaded again.
    """
    from mlxsft.backends.torch.generate import generate_answer
    from mlxsft.backends.torch.model import load_model
    from mlxsft.evaluate import compare, load_questions

    t = cfg.train
    questions = load_questions(t.compare_questions, limit=t.compare_limit)
    kw = dict(template=template, template_kwargs=cfg.data.chat_template_kwargs, max_tokens=t.compare_max_tokens)
    tuned.eval()
    if hasattr(tuned, "disable_adapter"):  # peft: the base is the same weights with the adapter off
        base_answer = partial(generate_answer, tuned, hf_tok, activate=tuned.disable_adapter, **kw)
    else:
        base, _, _ = load_model(cfg.model.model, device, trust_remote_code=cfg.model.trust_remote_code)
        base_answer = partial(generate_answer, base, hf_tok, **kw)
    report = compare({"base": base_answer, "tuned": partial(generate_answer, tuned, hf_tok, **kw)},
                     questions, progress=lambda d, n: emit("compare_progress", {"done": d, "total": n}))
    atomic_write_json(Path(t.out) / "compare.json", report.to_dict())
    emit("compare", {"report": report})
    return report
