"""What ``mlxsft eval`` and ``mlxsft chat`` talk to, and how answers and losses are scored.

    target = resolve_target(model=None, adapter="runs/sft-20261129-0712")   # base model from the run
    report = compare({"base": answer_base, "tuned": answer_tuned}, load_questions("qa.jsonl"))

- ``resolve_target``: a base model spec plus an optional run folder; the run gives its base model
  (``config.yaml``), load settings (dtype, quantization) and the exact chat template it trained with.
- A questions file is JSONL with ``question`` (or ``messages``) and an optional ``reference``.
  ``compare(answerers, questions)`` asks every model every question and scores exact / numeric /
  contains match where a reference exists. The answer functions come from a backend
  (``mlxsft.backends.<mlx|torch>.generate``), so MLX and torch share this code.
- ``validation_loss``: mean NLL and perplexity over a prepared split, batched and masked exactly as
  the trainer's validation (the backend's ``validation.split_nll``, imported lazily).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from mlxsft.errors import DataError, MlxsftError, RunError
from mlxsft.scoring import score

if TYPE_CHECKING:
    from mlxsft.config import Config, DataConfig


@dataclass
class Question:
    messages: list[dict]
    reference: Optional[str] = None
    category: Optional[str] = None

    @property
    def text(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


@dataclass
class CompareRow:
    question: str
    reference: Optional[str]
    answers: dict[str, str]
    scores: dict[str, dict[str, bool]] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    tokens_per_sec: dict[str, float] = field(default_factory=dict)


@dataclass
class CompareReport:
    rows: list[CompareRow]
    models: list[str]

    def accuracy(self, model: str, metric: str = "exact") -> Optional[float]:
        scored = [r for r in self.rows if r.reference is not None]
        if not scored:
            return None
        return sum(r.scores[model][metric] for r in scored) / len(scored)

    @property
    def n_scored(self) -> int:
        return sum(r.reference is not None for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "n_questions": len(self.rows),
            "n_scored": self.n_scored,
            "totals": {m: {k: self.accuracy(m, k) for k in ("exact", "numeric", "contains")} for m in self.models},
            "rows": [r.__dict__ for r in self.rows],
        }


def bundled_questions_path() -> Path:
    import mlxsft.data.bundled as bundled

    return Path(bundled.__file__).parent / "eval.jsonl"


def load_questions(path: Optional[str | Path] = None, limit: Optional[int] = None) -> list[Question]:
    path = Path(path) if path else bundled_questions_path()
    if not path.is_file():
        raise DataError("questions file not found", file=str(path))
    out: list[Question] = []
    with open(path, encoding="utf-8", errors="strict") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"invalid JSON ({e.msg})", file=str(path), line=lineno) from None
            if not isinstance(row, dict):
                raise DataError("expected a JSON object", file=str(path), line=lineno)
            if isinstance(row.get("messages"), list):
                msgs = [m for m in row["messages"] if isinstance(m, dict)]
                if msgs and msgs[-1].get("role") == "assistant":
                    row.setdefault("reference", msgs[-1].get("content"))
                    msgs = msgs[:-1]
            elif isinstance(row.get("question"), str) and row["question"].strip():
                msgs = [{"role": "user", "content": row["question"]}]
            else:
                raise DataError("needs a non-empty string 'question' or a 'messages' list",
                                file=str(path), line=lineno, field="question")
            ref = row.get("reference")
            if ref is not None and not isinstance(ref, str):
                ref = str(ref)
            out.append(Question(messages=msgs, reference=ref, category=row.get("category")))
            if limit and len(out) >= limit:
                break
    if not out:
        raise DataError("no questions", file=str(path))
    return out


AnswerFn = Callable[[list[dict]], Any]  # messages -> object with .text, .tokens, .tokens_per_sec


def compare(answerers: dict[str, AnswerFn], questions: list[Question],
            progress: Optional[Callable[[int, int], None]] = None) -> CompareReport:
    """Ask every model every question (model by model, so each stays warm)."""
    return compare_batched({name: (lambda convs, fn=fn: [fn(c) for c in convs]) for name, fn in answerers.items()},
                           questions, progress, chunk=1)


BatchAnswerFn = Callable[[list[list[dict]]], list[Any]]  # conversations -> answers, in order


def compare_batched(answerers: dict[str, BatchAnswerFn], questions: list[Question],
                    progress: Optional[Callable[[int, int], None]] = None, chunk: int = 32) -> CompareReport:
    """Like ``compare``, but each model gets ``chunk`` questions per call (batched generation)."""
    rows = [CompareRow(question=q.text, reference=q.reference, answers={}) for q in questions]
    total = len(questions) * len(answerers)
    done = 0
    for name, answer in answerers.items():
        for lo in range(0, len(questions), chunk):
            qs, rs = questions[lo:lo + chunk], rows[lo:lo + chunk]
            for q, row, a in zip(qs, rs, answer([q.messages for q in qs])):
                row.answers[name] = a.text
                row.tokens[name] = a.tokens
                row.tokens_per_sec[name] = a.tokens_per_sec
                if q.reference is not None:
                    row.scores[name] = score(a.text, q.reference)
                done += 1
            if progress:
                progress(done, total)
    return CompareReport(rows=rows, models=list(answerers))


# ----------------------------------------------------------------------------- the model under test
@dataclass
class Target:
    """A base model, optionally with a run's adapters, and how the run generated its prompts."""

    model: str
    adapter: Optional[Path] = None  # run folder (or its best/, checkpoints/step-…) with the trained weights
    run_config: Optional["Config"] = None  # the run's config.yaml, when found
    template: Optional[str] = None  # the run's chat_template.jinja; None: the tokenizer's (or ChatML)
    fine_tune_type: str = "lora"
    backend: Optional[str] = None  # the backend the run trained on ("mlx" | "torch"); None without a run

    @property
    def template_kwargs(self) -> dict:
        return dict(self.run_config.data.chat_template_kwargs) if self.run_config else {}

    @property
    def load_kwargs(self) -> dict:
        """dtype and quantization the adapters were trained against (QLoRA adapters need the same base)."""
        if self.run_config is None:
            return {}
        m = self.run_config.model
        return {"dtype": m.dtype, "quantize": m.quantize, "group_size": m.group_size}


def _run_file(adapter: Path, name: str) -> Optional[Path]:
    """``name`` in the adapter folder or up to two folders above (``RUN/best``, ``RUN/checkpoints/step-…``)."""
    for folder in (adapter, adapter.parent, adapter.parent.parent):
        if (folder / name).is_file():
            return folder / name
    return None


def _run_backend(run: Path) -> str:
    """``torch`` when the run (or the run above ``best/`` / ``checkpoints/step-…``) has run_info.json saying so."""
    info = _run_file(run, "run_info.json")
    if info is None:
        return "mlx"
    try:
        return str(json.loads(info.read_text()).get("backend", "mlx"))
    except (json.JSONDecodeError, AttributeError):
        raise RunError(f"{info}: invalid JSON") from None


def resolve_target(model: Optional[str], adapter: Optional[str | Path], backend: Optional[str] = None) -> Target:
    """``--model`` / ``--adapter`` to a Target; without ``--model`` the run's base model is used.

    ``backend``: the backend that will load it; a run trained on the other one is refused with a hint
    (MLX adapters and PEFT adapters are different files; ``mlxsft export`` converts between them).
    """
    from mlxsft.config import ModelConfig, load_config

    if adapter is None:
        return Target(model=model or ModelConfig().model)
    run = Path(adapter)
    if not run.is_dir():
        raise RunError(f"{run}: adapter folder not found")
    trained_on = _run_backend(run)
    if backend is not None and backend != trained_on:
        raise RunError(f"{run}: this run was trained with --backend {trained_on}; it cannot be loaded with "
                       f"--backend {backend}", hint=f"use --backend {trained_on} (or leave --backend out)")
    cfg_path, tpl_path = _run_file(run, "config.yaml"), _run_file(run, "chat_template.jinja")
    cfg = load_config(cfg_path) if cfg_path else None
    if trained_on == "torch":
        # full fine-tuning keeps the tuned tensors; LoRA/DoRA keep PEFT's files (checkpoint folders hold neither)
        full = (cfg.lora.method == "full") if cfg else not (run / "adapter_model.safetensors").is_file()
        need = ("trainable.safetensors",) if full else ("adapter_model.safetensors", "adapter_config.json")
    else:
        need = ("adapters.safetensors", "adapter_config.json")
    missing = [f for f in need if not (run / f).is_file()]
    if missing:
        raise RunError(f"{run}: not a run folder with trained weights (missing {', '.join(missing)})",
                       hint="point at the run folder or its best/")
    if model is None and cfg is None:
        raise RunError(f"{run}: no config.yaml naming the base model", hint="pass --model")
    return Target(model=model or cfg.model.model, adapter=run, run_config=cfg,
                  template=tpl_path.read_text() if tpl_path else None,
                  fine_tune_type=_fine_tune_type(run, trained_on, cfg), backend=trained_on)


def _fine_tune_type(run: Path, backend: str, cfg: Optional["Config"]) -> str:
    if backend == "torch":
        return "full" if not (run / "adapter_model.safetensors").is_file() else (cfg.lora.method if cfg else "lora")
    try:
        return json.loads((run / "adapter_config.json").read_text()).get("fine_tune_type", "lora")
    except (json.JSONDecodeError, AttributeError):
        raise RunError(f"{run}/adapter_config.json: invalid JSON") from None


def chat_template(target: Target, hf_tokenizer: Any) -> str:
    """The run's template, else the tokenizer's, else the default (ChatML) for template-less models."""
    if target.template is not None:
        return target.template
    from mlxsft.data import resolve_chat_template

    return resolve_chat_template(hf_tokenizer, None)


def data_config(target: Target, data: str, *, max_seq_len: Optional[int] = None) -> "DataConfig":
    """The run's data settings (format, masks, max_seq_len) pointed at another dataset."""
    import dataclasses

    from mlxsft.config import DataConfig

    base = target.run_config.data if target.run_config else DataConfig()
    cfg = dataclasses.replace(base, data=data, max_rows=None, chat_template=None)
    if max_seq_len is not None:
        cfg.max_seq_len = max_seq_len
    return cfg


# ----------------------------------------------------------------------------- validation loss
@dataclass
class LossResult:
    loss: float  # mean NLL per supervised token
    perplexity: float
    tokens: int  # supervised tokens scored
    rows: int


def validation_loss(model: Any, split: Any, *, batch_size: int, max_seq_len: int, pack: bool,
                    pad_id: int = 0, backend: str = "mlx") -> LossResult:
    """Mean NLL over a prepared split with the training masks: the trainer's validation code, per backend."""
    import importlib
    import math

    from mlxsft.data.batching import plan_batches

    plan = plan_batches([len(e.input_ids) for e in split.examples], batch_size, max_seq_len=max_seq_len,
                        pack=pack, seed=0, epoch=0, shuffle=False)
    split_nll = importlib.import_module(f"mlxsft.backends.{backend}.validation").split_nll
    total, count = split_nll(model, split.examples, plan, pad_id=pad_id, pack=pack)
    if count == 0:
        raise MlxsftError("the dataset has no supervised tokens to score",
                          hint="check --train-on / the roles in the data")
    loss = total / count
    return LossResult(loss=loss, perplexity=math.exp(min(loss, 50.0)), tokens=count, rows=len(split.examples))


# ----------------------------------------------------------------------------- mlxsft eval
@dataclass
class EvalOptions:
    model: Optional[str] = None
    adapter: Optional[str] = None
    questions: Optional[str] = None
    data: Optional[str] = None
    split: str = "valid"
    compare: bool = False
    max_tokens: int = 128
    limit: Optional[int] = None
    batch_size: Optional[int] = None  # default: the run's, else 8
    max_seq_len: Optional[int] = None  # default: the run's, else 512
    backend: Optional[str] = None  # mlx | torch; default: the run's backend, else mlx


@dataclass
class EvalReport:
    """The result of ``mlxsft eval``; ``to_dict`` is the ``--json`` object (schema in ``mlxsft/cli/eval.py``)."""

    model: str
    adapter: Optional[str]
    models: list[str]
    backend: str = "mlx"
    questions_file: Optional[str] = None
    questions: Optional[CompareReport] = None
    data_path: Optional[str] = None
    split: Optional[str] = None
    losses: dict[str, LossResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        q = dict(self.questions.to_dict(), file=self.questions_file) if self.questions else None
        d = None
        if self.losses:
            rows = next(iter(self.losses.values())).rows
            d = {"path": self.data_path, "split": self.split, "rows": rows,
                 "results": {m: {"loss": r.loss, "perplexity": r.perplexity, "tokens": r.tokens}
                             for m, r in self.losses.items()}}
        return {"model": self.model, "backend": self.backend, "adapter": self.adapter, "models": self.models,
                "questions": q, "data": d}


Progress = Callable[[str, int, int], None]  # (stage, done, total)


def run_eval(opts: EvalOptions, progress: Optional[Progress] = None) -> EvalReport:
    """Load the model(s), answer the questions greedily and/or score the dataset's loss."""
    from functools import partial

    from mlxsft.chat import backend_module
    from mlxsft.errors import ConfigError

    if not opts.questions and not opts.data:
        raise ConfigError("give --questions FILE or --data PATH")
    if opts.compare and not opts.adapter:
        raise ConfigError("--compare needs --adapter RUN (the tuned model to compare with its base)")
    tick = progress or (lambda stage, done, total: None)
    questions = load_questions(opts.questions, limit=opts.limit) if opts.questions else None
    target = resolve_target(opts.model, opts.adapter, opts.backend)
    backend_name = opts.backend or target.backend or "mlx"
    backend = backend_module(backend_name)
    tick("loading", 0, 1)
    tokenizer, views = backend.load_views(target.model, target.adapter, fine_tune_type=target.fine_tune_type,
                                          load_kwargs=target.load_kwargs)
    tick("loading", 1, 1)
    names = ["base", "tuned"] if opts.compare else (["tuned"] if target.adapter else ["base"])
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    template = chat_template(target, hf)
    report = EvalReport(model=target.model, adapter=str(target.adapter) if target.adapter else None, models=names,
                        backend=backend_name)

    if questions is not None:
        kw = dict(template=template, template_kwargs=target.template_kwargs, max_tokens=opts.max_tokens)
        answerers = {n: partial(backend.generate_answer, views[n].model, tokenizer, activate=views[n].activate, **kw)
                     for n in names}
        report.questions = compare(answerers, questions, progress=lambda d, n: tick("questions", d, n))
        report.questions_file = str(opts.questions)

    if opts.data:
        from mlxsft.data import prepare_split

        dcfg = data_config(target, opts.data, max_seq_len=opts.max_seq_len)
        split = prepare_split(dcfg, hf, opts.split, chat_template=template)
        if not split.examples:
            raise DataError("no rows to score", file=opts.data)
        batch = opts.batch_size or (target.run_config.train.batch_size if target.run_config else 8)
        pad = hf.pad_token_id if hf.pad_token_id is not None else (hf.eos_token_id or 0)
        for i, n in enumerate(names):
            tick("loss", i, len(names))
            with views[n].activate():
                report.losses[n] = validation_loss(views[n].model, split, batch_size=batch, max_seq_len=dcfg.max_seq_len,
                                                   pack=dcfg.pack, pad_id=pad, backend=backend_name)
        tick("loss", len(names), len(names))
        report.data_path, report.split = str(opts.data), opts.split
    return report
