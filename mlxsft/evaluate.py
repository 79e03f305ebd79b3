"""``mlxsft eval``: how answers and losses are scored, for a base model and a run (``mlxsft/target.py``).

    report = compare({"base": answer_base, "tuned": answer_tuned}, load_questions("qa.jsonl"))
    report = run_eval(EvalOptions(adapter="runs/sft-20261129-0712", questions="qa.jsonl", compare=True))

- A questions file is JSONL with ``question`` (or ``messages``) and an optional ``reference``.
  ``compare(answerers, questions)`` asks every model every question and scores exact / numeric /
  contains match where a reference exists. The answer functions come from a backend
  (``mlxsft.backends.registry.part(name, "generate")``), so MLX and torch share this code.
- ``validation_loss``: mean NLL and perplexity over a prepared split, batched, cut and masked exactly as
  the trainer's validation (``loop.validation_plan`` and the backend's ``validation.split_nll``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from mlxsft.errors import DataError, MlxsftError
from mlxsft.scoring import score

if TYPE_CHECKING:
    from mlxsft.config import Config


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
    from mlxsft.data.bundled_paths import bundled_path

    return bundled_path("eval")


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


# ----------------------------------------------------------------------------- validation loss
@dataclass
class LossResult:
    loss: float  # mean NLL per supervised token
    perplexity: float
    tokens: int  # supervised tokens scored
    rows: int


def validation_loss(model: Any, split: Any, cfg: "Config", *, pad_id: int = 0, backend: str = "mlx") -> LossResult:
    """Mean NLL over a prepared split with the training masks: the trainer's validation plan (batch size,
    ``max_seq_len``, packing, ``micro_batch_tokens`` from ``cfg``) and the backend's ``split_nll``."""
    import math

    from mlxsft.backends import registry
    from mlxsft.backends.loop import validation_plan

    plan = validation_plan(split.examples, cfg)
    total, count = registry.part(backend, "validation").split_nll(model, split.examples, plan, pad_id=pad_id,
                                                                   pack=cfg.data.pack)
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
    """The result of ``mlxsft eval``; ``to_dict`` is the ``--json`` object (schema in ``cli/eval.py``)."""

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
    import dataclasses
    from functools import partial

    from mlxsft.backends import registry
    from mlxsft.backends.generation import hf_tokenizer
    from mlxsft.backends.loop import pad_id
    from mlxsft.config import Config
    from mlxsft.errors import ConfigError
    from mlxsft.target import chat_template, data_config, resolve_target

    if not opts.questions and not opts.data and not opts.compare:
        raise ConfigError("give --questions FILE or --data PATH (or --compare with --adapter RUN)")
    if opts.compare and not opts.adapter:
        raise ConfigError("--compare needs --adapter RUN (the tuned model to compare with its base)")
    tick = progress or (lambda stage, done, total: None)
    questions = load_questions(opts.questions, limit=opts.limit) if opts.questions else None
    target = resolve_target(opts.model, opts.adapter, opts.backend)
    if questions is None and not opts.data:  # --compare alone: the questions the run's own before/after table asks
        run_q = target.run_config.train.compare_questions if target.run_config else None
        questions = load_questions(run_q, limit=opts.limit)
        opts = dataclasses.replace(opts, questions=str(run_q or bundled_questions_path()))
    backend_name = opts.backend or target.backend or "mlx"
    backend = registry.part(backend_name, "generate")
    tick("loading", 0, 1)
    tokenizer, views = backend.load_views(target.model, target.adapter, fine_tune_type=target.fine_tune_type,
                                          load_kwargs=target.load_kwargs)
    tick("loading", 1, 1)
    names = ["base", "tuned"] if opts.compare else (["tuned"] if target.adapter else ["base"])
    hf = hf_tokenizer(tokenizer)
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
        run_cfg = target.run_config or Config()  # batch size and micro-batch cut: the run's, as its validation
        train = dataclasses.replace(run_cfg.train, eval_batches=0, batch_size=opts.batch_size or
                                    (run_cfg.train.batch_size if target.run_config else 8))
        vcfg = dataclasses.replace(run_cfg, data=dcfg, train=train)
        for i, n in enumerate(names):
            tick("loss", i, len(names))
            with views[n].activate():
                report.losses[n] = validation_loss(views[n].model, split, vcfg, pad_id=pad_id(hf), backend=backend_name)
        tick("loss", len(names), len(names))
        report.data_path, report.split = str(opts.data), opts.split
    return report
