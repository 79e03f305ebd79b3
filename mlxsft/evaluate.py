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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from mlxsft.errors import DataError, MlxsftError
from mlxsft.scoring import score, verdict

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
    category: Optional[str] = None
    finish_reason: dict[str, str] = field(default_factory=dict)  # "stop" (end of turn) | "length" (token limit)
    verdicts: dict[str, str] = field(default_factory=dict)  # right | partial | wrong (``scoring.verdict``)


@dataclass
class CompareReport:
    rows: list[CompareRow]
    models: list[str]
    forgetting: Optional[Any] = None  # mlxsft.learned.Forgetting, when the run measured it
    source: Optional[str] = None  # where the questions came from (a file, or a dataset's validation split)

    def accuracy(self, model: str, metric: str = "exact") -> Optional[float]:
        scored = [r for r in self.rows if r.reference is not None]
        if not scored:
            return None
        if metric == "right":
            return sum(r.verdicts[model] == "right" for r in scored) / len(scored)
        return sum(r.scores[model][metric] for r in scored) / len(scored)

    def stop_rate(self, model: str, scored_only: bool = False) -> Optional[float]:
        """Share of answers that ended at the end-of-turn token rather than at the token limit."""
        rows = [r for r in self.rows if r.reference is not None or not scored_only]
        rows = [r for r in rows if model in r.finish_reason]
        return sum(r.finish_reason[model] == "stop" for r in rows) / len(rows) if rows else None

    @property
    def n_scored(self) -> int:
        return sum(r.reference is not None for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        from mlxsft.learned import learned_totals

        metrics = ("exact", "numeric", "contains", "similarity", "right")
        totals: dict[str, Any] = {m: {**{k: self.accuracy(m, k) for k in metrics},
                                      "stop_rate": self.stop_rate(m), "stop_rate_scored": self.stop_rate(m, True)}
                                  for m in self.models}
        learned = learned_totals(self)
        if learned is not None:
            totals.update({k: learned[k] for k in ("wins", "regressions", "unchanged")})
        return {
            "models": self.models,
            "questions_from": self.source,
            "n_questions": len(self.rows),
            "n_scored": self.n_scored,
            "n_open": len(self.rows) - self.n_scored,
            "totals": totals,
            "learned": learned,
            "forgetting": self.forgetting.to_dict() if self.forgetting is not None else None,
            "rows": [r.__dict__ for r in self.rows],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CompareReport":
        """``to_dict``'s output (``compare.json``) back as a report; the totals are recomputed from the rows."""
        from mlxsft.learned import Forgetting

        names = {f.name for f in fields(CompareRow)}
        rows = [CompareRow(**{k: v for k, v in r.items() if k in names}) for r in d.get("rows") or []]
        forgetting = d.get("forgetting")
        return cls(rows=rows, models=list(d.get("models") or []), source=d.get("questions_from"),
                   forgetting=Forgetting(**forgetting) if isinstance(forgetting, dict) else None)


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


def general_prompts_path() -> Path:
    from mlxsft.data.bundled_paths import bundled_path

    return bundled_path("general")


def load_general_prompts(path: Optional[str | Path] = None) -> list[list[dict]]:
    """The forgetting score's prompts (one user turn each) from a questions file; the bundled ones by default."""
    return [q.messages for q in load_questions(path or general_prompts_path())]


def questions_from_split(data: "DataConfig", limit: Optional[int] = None) -> list[Question]:
    """Held-out questions from a dataset's validation split: each row up to its last assistant turn is the
    question (system and earlier turns included), that answer the reference. Raises SplitNotFound."""
    from mlxsft.data.load import load_valid_conversations

    convs, _ = load_valid_conversations(data.data, data.valid_split, data)
    out = []
    for conv in convs:
        last = max((i for i, m in enumerate(conv.messages) if m["role"] == "assistant"), default=None)
        if last is None or not any(m["role"] == "user" for m in conv.messages[:last]):
            continue
        out.append(Question(messages=[{k: v for k, v in m.items() if k in ("role", "content")}
                                      for m in conv.messages[:last]],
                            reference=conv.messages[last]["content"], category="your data"))
        if limit and len(out) >= limit:
            break
    return out


USER_DATA_QUESTIONS = 40  # held-out rows of a user's validation split asked by default (each costs two answers)


def run_questions(cfg: "Config", limit: Optional[int] = None) -> tuple[list[Question], str]:
    """The questions a run's before/after table asks, and where they come from: ``compare_questions`` if set,
    else the bundled eval questions for the bundled data, else the run's own validation split."""
    t = cfg.train
    if t.compare_questions or cfg.data.data is None:
        return load_questions(t.compare_questions, limit=limit), str(t.compare_questions or bundled_questions_path())
    from mlxsft.errors import SplitNotFound

    try:
        questions = questions_from_split(cfg.data, limit=limit or USER_DATA_QUESTIONS)
    except SplitNotFound:
        questions = []
    if not questions:
        raise DataError(f"no validation split with assistant answers to ask before/after: give "
                        f"--compare-questions FILE or a '{cfg.data.valid_split}' split", file=cfg.data.data)
    return questions, f"{cfg.data.data} ({cfg.data.valid_split} split)"


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
    rows = [CompareRow(question=q.text, reference=q.reference, answers={}, category=q.category) for q in questions]
    total = len(questions) * len(answerers)
    done = 0
    for name, answer in answerers.items():
        for lo in range(0, len(questions), chunk):
            qs, rs = questions[lo:lo + chunk], rows[lo:lo + chunk]
            for q, row, a in zip(qs, rs, answer([q.messages for q in qs])):
                row.answers[name] = a.text
                row.tokens[name] = a.tokens
                row.tokens_per_sec[name] = a.tokens_per_sec
                row.finish_reason[name] = getattr(a, "finish_reason", "stop")
                if q.reference is not None:
                    row.scores[name] = score(a.text, q.reference)
                    row.verdicts[name] = verdict(row.scores[name])
                done += 1
            if progress:
                progress(done, total)
    return CompareReport(rows=rows, models=list(answerers))


def compare_models(backend: str, views: dict[str, Any], tokenizer: Any, questions: list[Question], *,
                   template: str, template_kwargs: Optional[dict] = None, max_tokens: int = 128,
                   general: Optional[list[list[dict]]] = None, progress: Optional[Callable[[int, int], None]] = None,
                   on_forgetting: Optional[Callable[[int], None]] = None,
                   base_memo: Optional[dict[str, Any]] = None) -> CompareReport:
    """Ask ``questions`` of each model view (batched, greedy) and, given ``general`` prompts and both a base and a
    tuned view, measure the forgetting score: what ``mlxsft train``'s table and ``mlxsft eval`` both do.

    ``base_memo``: a dict kept by a caller that asks the same base model again (the arms of ``mlxsft
    experiment``): the base view's greedy answers are stored in it and reused for the same conversation, template
    and token limit, so only the tuned model answers the second time."""
    from functools import partial

    from mlxsft.backends import registry
    from mlxsft.backends.generation import hf_tokenizer, render_prompt
    from mlxsft.learned import drift, measure_forgetting

    gen = registry.part(backend, "generate")
    kw = dict(template=template, template_kwargs=template_kwargs, max_tokens=max_tokens)
    answerers = {name: partial(gen.generate_answers_batch, view.model, tokenizer, activate=view.activate, **kw)
                 for name, view in views.items()}
    if base_memo is not None and "base" in answerers:
        answerers["base"] = _memoized(answerers["base"], base_memo, json.dumps([template, template_kwargs,
                                                                                max_tokens], sort_keys=True))
    report = compare_batched(answerers, questions, progress=progress)
    if general and {"base", "tuned"} <= set(views):
        if on_forgetting:
            on_forgetting(len(general))
        logprobs = registry.part(backend, "divergence").answer_logprobs
        render = partial(render_prompt, hf_tokenizer(tokenizer), template=template, template_kwargs=template_kwargs)
        report.forgetting = measure_forgetting(general, answerers["base"],
                                               partial(drift, logprobs, views["base"], views["tuned"]), render)
    return report


def _memoized(answer: BatchAnswerFn, memo: dict[str, Any], settings: str) -> BatchAnswerFn:
    """``answer`` that looks each conversation up in ``memo`` first and stores what it had to generate."""
    def call(convs: list[list[dict]]) -> list[Any]:
        keys = [settings + json.dumps(c, sort_keys=True) for c in convs]
        missing = [(k, c) for k, c in zip(keys, convs) if k not in memo]
        if missing:
            for (k, _), a in zip(missing, answer([c for _, c in missing])):
                memo[k] = a
        return [memo[k] for k in keys]

    return call


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
    forgetting: bool = True  # with compare: the forgetting score on general prompts
    forgetting_prompts: Optional[str] = None  # default: the bundled general prompts


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
        questions, source = run_questions(target.run_config or Config(), limit=opts.limit)
        opts = dataclasses.replace(opts, questions=source)
    backend_name = opts.backend or target.backend or "mlx"
    tick("loading", 0, 1)
    tokenizer, views = registry.part(backend_name, "generate").load_views(target.model, target.adapter, fine_tune_type=target.fine_tune_type,
                                          load_kwargs=target.load_kwargs)
    tick("loading", 1, 1)
    names = ["base", "tuned"] if opts.compare else (["tuned"] if target.adapter else ["base"])
    hf = hf_tokenizer(tokenizer)
    template = chat_template(target, hf)
    report = EvalReport(model=target.model, adapter=str(target.adapter) if target.adapter else None, models=names,
                        backend=backend_name)

    if questions is not None:
        general = load_general_prompts(opts.forgetting_prompts) if opts.compare and opts.forgetting else None
        report.questions = compare_models(backend_name, {n: views[n] for n in names}, tokenizer, questions,
                                         template=template, template_kwargs=target.template_kwargs,
                                         max_tokens=opts.max_tokens, general=general,
                                         progress=lambda d, n: tick("questions", d, n),
                                         on_forgetting=lambda n: tick("forgetting", 0, 1))
        if report.questions.forgetting is not None:
            tick("forgetting", 1, 1)
        report.questions_file = str(opts.questions)
        report.questions.source = report.questions_file

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
