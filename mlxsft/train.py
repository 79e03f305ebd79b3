"""``mlxsft train`` as a library call: run folder, data, model, memory plan, the loop, the report.

    from mlxsft.config import load_config
    from mlxsft.train import run_training
    outcome = run_training(load_config("configs/default.yaml"), callback=print_event)

Backend-neutral orchestration, written once for both backends; the model-specific parts sit behind
``mlxsft.backends.base.Backend`` and the loops in ``mlxsft/backends/<name>/trainer.py``.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

from mlxsft.config import Config
from mlxsft.data.batching import CPU_MICRO_BATCH_TOKENS, micro_batch_shape
from mlxsft.errors import ConfigError, DataError, MlxsftError, RunError, SplitNotFound
from mlxsft.events import Event
from mlxsft.files import atomic_write_json, atomic_write_text
from mlxsft.runs import check_out_dir, claim_run_dir, default_run_dir, find_checkpoint, is_run_folder
from mlxsft.runs.read import run_config
from mlxsft.runs.setup import DATA_SUMMARY_FILE, SETUP_FILE, data_summary, setup_facts

Callback = Callable[[Event, dict], None]


@dataclass
class TrainOutcome:
    run_dir: Path
    result: Any = None  # TrainResult
    plan: Any = None  # MemoryPlan
    compare: Any = None  # CompareReport
    planned_only: bool = False
    compare_stopped: bool = False  # Ctrl-C during the before/after table: the training itself is complete
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
        if is_run_folder(run_dir):
            raise RunError(f"{run_dir}: the run stopped before it started (no config.yaml yet)",
                           hint=f"run the command that started it again with `--out {run_dir} --overwrite`")
        raise RunError(f"{run_dir}: not a run folder (no config.yaml)")
    if config_file:
        raise ConfigError("--config cannot be combined with --resume (the run's config.yaml is used)")
    cfg = run_config(run_dir, overrides)  # the same reader chat, eval and export use
    cfg.train.out = str(run_dir)
    return cfg, run_dir


def input_paths(cfg: Config, config_file: Optional[str] = None) -> tuple[str, ...]:
    """Local paths this job reads: a run folder that is or holds one of them is never emptied."""
    paths = [cfg.data.data, cfg.data.chat_template, cfg.train.compare_questions, config_file, cfg.model.model]
    return tuple(str(p) for p in paths if p and Path(str(p)).expanduser().exists())


def check_inputs(cfg: Config) -> None:
    """The files the job names exist (data, chat template, questions): checked before the model loads."""
    from mlxsft.data.readers import is_local

    d, t = cfg.data, cfg.train
    if d.data and is_local(d.data) and not Path(d.data).expanduser().exists():
        raise DataError("file or folder not found", file=d.data)
    for what, path in (("chat_template", d.chat_template), ("compare_questions", t.compare_questions if t.compare else None)):
        if path and not Path(path).expanduser().is_file():
            raise ConfigError(f"{what}: {path}: file not found")


def run_training(cfg: Config, *, resume: bool = False, overwrite: bool = False, plan_only: bool = False,
                 callback: Optional[Callback] = None, config_file: Optional[str] = None,
                 accept_changes: bool = False, base_memo: Optional[dict] = None) -> TrainOutcome:
    """Train ``cfg`` on its backend; the steps read top to bottom, the backend does the model-specific parts.

    ``base_memo``: kept across calls that train the same base model (``mlxsft experiment``'s arms), so the
    before/after table generates the base model's answers once (``evaluate.compare_models``)."""
    from mlxsft.backends import registry
    from mlxsft.data import prepare_split, resolve_chat_template
    from mlxsft.distributed import launch_rank
    from mlxsft.trackers import check_trackers

    emit = callback or (lambda e, p: None)
    keep = input_paths(cfg, config_file)
    run_dir = Path(cfg.train.out) if cfg.train.out else default_run_dir(cfg.train.name)
    if resume and find_checkpoint(run_dir) is None and (run_dir / "config.yaml").is_file():
        # killed before its first checkpoint: continuing means starting at step 0 with the run's own config
        emit("message", {"text": f"{run_dir} has no checkpoint yet: starting it from step 0 with its config.yaml"})
        resume, overwrite = False, True
    check_inputs(cfg)  # before any model is loaded: a wrong path costs no wait
    check_trackers(cfg.train.report_to)  # and neither does a --report-to tracker that is not installed
    if not plan_only and launch_rank() == 0:
        check_out_dir(run_dir, resume=resume, overwrite=overwrite, keep=keep)
    backend = registry.get_backend(cfg.train.backend, cfg, emit)
    world = backend.world  # several processes under mlx.launch / torchrun (mlxsft/distributed.py)
    world.check_batch_size(cfg.train.batch_size)
    if not world.is_main:
        emit = lambda e, p: None  # noqa: E731  (rank 0 alone reports)
    if world.size > 1:
        emit("message", {"text": f"{world.size} processes: each takes {cfg.train.batch_size // world.size} of the "
                                 f"{cfg.train.batch_size} rows of every micro-batch"})
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
                       hint=_fit_hint(cfg, backend, loaded, rows, length, train.stats))
    backend.before_training()
    inputs = input_keys(loaded, train, valid)
    if resume:
        inputs_changed(run_dir, inputs, accept_changes, emit)
    if not world.agree(json.dumps([cfg.hash(), inputs], sort_keys=True)):  # every rank decides alike, so all stop
        raise RunError(f"{run_dir}: the processes disagree on the config, the data or the model",
                       hint="start every process with the same flags, data files and model")

    # rank 0 alone locks and writes the run folder; the other ranks only read it, to resume
    with ExitStack() as held:
        failed: Optional[MlxsftError] = None
        if world.is_main:
            try:
                held.enter_context(claim_run_dir(run_dir, resume=resume, overwrite=overwrite, keep=keep))
            except MlxsftError as e:
                failed = e
        if world.any(failed is not None):  # the other ranks stop with rank 0, not at the collective time-out
            raise failed or RunError(f"{run_dir}: the main process could not claim the run folder; stopping too")
        if world.is_main and not resume:
            cfg.save(run_dir / "config.yaml")
            atomic_write_text(run_dir / "chat_template.jinja", template)
            atomic_write_text(run_dir / "base_model.txt", f"{cfg.model.model}\n{loaded.weights_path}\n")
            backend.write_run_files(run_dir, loaded)
        if world.is_main:  # new, unchanged or accepted: what the checkpoints from here on were trained on
            atomic_write_json(run_dir / INPUTS_FILE, inputs)
            write_run_facts(run_dir, emit, {
                SETUP_FILE: lambda: setup_facts(backend, plan, machine_gb, trainable, total, world.size),
                DATA_SUMMARY_FILE: lambda: data_summary(train, valid, cfg, hf_tok.decode)})
        result = backend.trainer(loaded, run_dir).fit(train, valid, resume=resume)
        from mlxsft.plot import plot_loss
        from mlxsft.runs import MetricsLog

        if world.is_main:
            plot_loss(MetricsLog(run_dir / "metrics.jsonl").read(), run_dir / "loss.png")
            write_run_report(run_dir, emit)  # finished or stopped by Ctrl-C: the page is there either way
        outcome = TrainOutcome(run_dir=run_dir, result=result, plan=plan, model=loaded.model)
        if cfg.train.compare and not result.interrupted and world.is_main:  # still under the lock: compare.json
            if world.sharded:  # generating on rank 0 alone would wait for the other ranks' shards forever
                emit("message", {"text": f"before/after table skipped: the weights are sharded over {world.size} "
                                         f"processes (FSDP); `mlxsft eval --adapter {run_dir} --compare` gives it"})
            else:
                try:
                    outcome.compare = compare_base_and_tuned(cfg, backend, loaded, template, emit, base_memo)
                    write_run_report(run_dir, emit)  # again, with the before/after questions
                except KeyboardInterrupt:  # the run is finished and saved; only the table is missing
                    outcome.compare_stopped = True
    return outcome


def write_run_facts(run_dir: Path, emit: Callback, facts: dict[str, Callable[[], dict]]) -> None:
    """setup.json and data_summary.json for the report (``mlxsft/runs/setup.py``); a failure costs a line."""
    for name, make in facts.items():
        try:
            atomic_write_json(run_dir / name, make())
        except Exception as e:  # noqa: BLE001 - the report's facts are never worth a run
            emit("message", {"text": f"{name} not written ({type(e).__name__}: {e}); the report will lack it"})


def write_run_report(run_dir: Path, emit: Callback) -> None:
    """report.html in the run folder (``mlxsft/report``); a failure is one line, never a failed or lost run."""
    try:
        from mlxsft.report import write_report

        write_report([run_dir], run_dir / "report.html")
    except Exception as e:  # noqa: BLE001 - the run is saved; the page is a view of it
        emit("message", {"text": f"report.html not written ({type(e).__name__}: {e}); "
                                 f"`mlxsft report {run_dir}` makes it"})


INPUTS_FILE = "inputs.json"  # what the run trains on, pinned: a resume refuses other data or another model


def input_keys(loaded: Any, train: Any, valid: Any) -> dict[str, Any]:
    """Content keys of the prepared splits and the base model's files, and a Hub model's revision."""
    from mlxsft.models.fingerprint import hub_revision, model_content_key

    source = Path(loaded.source.path)
    return {"train_data": train.stats.get("key"), "valid_data": valid.stats.get("key") if valid else None,
            "model": model_content_key(source), "model_revision": hub_revision(source)}


def inputs_changed(run_dir: Path, now: dict[str, Any], accept: bool, emit: Callback) -> None:
    """Refuse to resume on data or a model other than the checkpoint's, unless the user accepts it knowingly."""
    checkpoint = find_checkpoint(run_dir)
    saved_path = next((p for p in (run_dir / INPUTS_FILE, checkpoint / INPUTS_FILE if checkpoint else None)
                       if p is not None and p.is_file()), None)
    if saved_path is None:
        return  # a run from before inputs were pinned
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, ValueError):
        raise RunError(f"{saved_path}: unreadable") from None
    names = {"train_data": "the training data", "valid_data": "the validation data", "model": "the model's files",
             "model_revision": "the Hub model's revision"}
    changed = [names[k] for k in names if saved.get(k) != now.get(k)]
    if not changed:
        return
    what = ", ".join(changed)
    if not accept:
        raise RunError(f"{run_dir}: {what} changed since the checkpoint",
                       hint="restore them, or resume with --accept-changes to continue on what is there now")
    emit("message", {"text": f"{what} changed since the checkpoint; continuing on them (--accept-changes)"})


def maybe_split(cfg: Config, hf_tok: Any, split: str, template: str) -> Any:
    from mlxsft.data import prepare_split

    try:
        return prepare_split(cfg.data, hf_tok, split, chat_template=template)
    except SplitNotFound:
        return None


def _fit_hint(cfg: Config, backend: Any, loaded: Any, rows: int, length: int, stats: dict) -> str:
    """What to change when the plan does not fit, with ``--grad-checkpoint``'s own plan when it is off (at long
    rows it is most of the way: Gemma-3-270M at 8192 tokens on MLX plans 27.7 GB without it, 6.2 GB with it)."""
    rest = "lower --batch-size or --max-seq-len, or pass --force"
    if cfg.train.grad_checkpoint:
        return rest
    with_gc = replace(cfg, train=replace(cfg.train, grad_checkpoint=True))
    planned = backend.memory_plan(loaded, rows, length, float(stats.get("supervised_fraction") or 1.0), cfg=with_gc)
    return f"with --grad-checkpoint the plan is {planned.total_gb:.1f} GB, each block recomputed in the " \
           f"backward pass: slower, leaner; or {rest}"


def compare_base_and_tuned(cfg: Config, backend: Any, loaded: Any, template: str, emit: Callback,
                           base_memo: Optional[dict] = None) -> Any:
    """Ask the held-out questions of the base and the tuned model, and measure the forgetting score; returns a
    CompareReport, also written to compare.json."""
    from mlxsft.evaluate import compare_models, load_general_prompts, run_questions

    t = cfg.train
    questions, source = run_questions(cfg, limit=t.compare_limit)
    report = compare_models(backend.name, backend.compare_views(loaded), loaded.tokenizer, questions,
                           template=template, template_kwargs=cfg.data.chat_template_kwargs,
                           max_tokens=t.compare_max_tokens,
                           general=load_general_prompts(t.forgetting_prompts) if t.forgetting else None,
                           progress=lambda d, n: emit("compare_progress", {"done": d, "total": n}),
                           on_forgetting=lambda n: emit("message", {"text": f"forgetting score: the base answers {n} "
                                                                            "general prompts, then both models score "
                                                                            "those answers"}),
                           base_memo=base_memo)
    report.source = source
    atomic_write_json(Path(t.out) / "compare.json", report.to_dict())
    emit("compare", {"report": report})
    return report
