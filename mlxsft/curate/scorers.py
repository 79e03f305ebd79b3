"""Scorers for ``best-of-k``: how good is one response to one prompt? Higher is better.

    scorer = make_scorer("reference")
    scorer.score([(prompt, "The answer is 5."), (prompt, "6")])      # [1.0, 0.0] for reference "5"

Specs (``--scorer``):
  ``reference``          against the prompt row's ``reference``: 1.0 for an exact or numeric match (the answer's last
                         number equals a numeric reference), 0.5 when the answer merely contains the reference,
                         else 0.0 (``mlxsft.scoring``, as in ``mlxsft eval``). ``reference:exact``,
                         ``reference:numeric`` and ``reference:contains`` score 1.0/0.0 by that test alone.
  ``judge:SPEC``         an LLM judge (a local model spec, or an endpoint URL with ``--judge-model``) rates the answer
                         from 1 to 10 with the rubric in ``JUDGE_PROMPT`` (shown the reference when the row has one);
                         a reply without a rating scores None (lowest). The scorer's name (in every row's ``meta``)
                         holds the URL without credentials or query, as a teacher's does.
  ``logprob:SPEC``       the mean log-probability per token of the response given the prompt under a local
                         scoring model (0 is the best possible; an empty response scores None).
  ``python:MOD:FN``      your own ``FN(prompt: dict, response: str) -> float``: ``prompt`` is the prompt row as read
                         from the file. ``MOD`` is a ``.py`` file (``path/to/file.py``), a name whose ``NAME.py`` is
                         in the current folder, or an installed module. It is loaded from that one file: the current
                         folder is never put on ``sys.path``, so a stray ``json.py`` there cannot stand in for a
                         library. It is code, run with your rights.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from mlxsft.curate.prompts import PromptRow
from mlxsft.curate.teachers import Sampling, Teacher, is_endpoint, make_teacher, redact_url
from mlxsft.errors import ConfigError

Item = tuple[PromptRow, str]

JUDGE_SYSTEM = "You are a strict, fair grader of answers written by an AI assistant."
JUDGE_PROMPT = """Rate the assistant's answer to the request below on a scale from 1 to 10.

Rubric:
- 10: correct, complete and directly answers the request; clear and concise.
- 7-9: correct, with minor omissions, padding or unclear wording.
- 4-6: partly correct or incomplete, or correct but hard to follow.
- 1-3: wrong, off-topic, a refusal, or unreadable text.
{reference}
Request:
<<<
{question}
>>>

Answer:
<<<
{answer}
>>>

Reply with the rating only, as "Score: N"."""
JUDGE_REFERENCE = "\nA reference answer is given: an answer that disagrees with it is wrong.\nReference: {reference}\n"
_SCORE = re.compile(r"score\s*[:=]?\s*\**\s*(10|[1-9])(?:\s*/\s*10)?\b", re.IGNORECASE)
_BARE = re.compile(r"^\D{0,20}?\b(10|[1-9])\b")


class Scorer(Protocol):
    name: str  # the spec, for provenance
    needs_reference: bool

    def score(self, items: list[Item]) -> list[Optional[float]]: ...

    def close(self) -> None: ...


def make_scorer(spec: str, *, judge_model: Optional[str] = None, api_key_env: Optional[str] = None,
                batch_size: int = 16, concurrency: int = 4, timeout: float = 120.0, retries: int = 4,
                allow_insecure: bool = False) -> Scorer:
    kind, _, arg = spec.partition(":")
    if kind == "reference":
        return ReferenceScorer(arg or "auto")
    if kind == "judge":
        if not arg:
            raise ConfigError("--scorer judge:SPEC needs a model spec or an endpoint URL after 'judge:'")
        judge = make_teacher(arg, model_name=judge_model, api_key_env=api_key_env, batch_size=batch_size,
                             concurrency=concurrency, timeout=timeout, retries=retries, allow_insecure=allow_insecure)
        return JudgeScorer(judge, name=f"judge:{redact_url(arg)}" if is_endpoint(arg) else spec)
    if kind == "logprob":
        if not arg:
            raise ConfigError("--scorer logprob:SPEC needs a local model spec after 'logprob:'")
        return LogprobScorer(arg)
    if kind == "python":
        return PythonScorer(arg)
    raise ConfigError(f"--scorer {spec}: unknown scorer (expected reference, judge:SPEC, logprob:SPEC or "
                      "python:MODULE:FUNCTION)")


# ----------------------------------------------------------------------------------------------- reference
class ReferenceScorer:
    MODES = ("auto", "exact", "numeric", "contains")
    needs_reference = True

    def __init__(self, mode: str = "auto"):
        if mode not in self.MODES:
            raise ConfigError(f"--scorer reference:{mode}: expected one of {', '.join(self.MODES)}")
        self.mode = mode
        self.name = "reference" if mode == "auto" else f"reference:{mode}"

    def score(self, items: list[Item]) -> list[Optional[float]]:
        return [self.score_one(text, p.reference or "") for p, text in items]

    def score_one(self, answer: str, reference: str) -> float:
        from mlxsft.scoring import score

        s = score(answer, reference)
        if self.mode != "auto":
            return float(s[self.mode])
        if s["exact"] or s["numeric"]:
            return 1.0
        return 0.5 if s["contains"] else 0.0

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------------------------- judge
def judge_messages(p: PromptRow, answer: str) -> list[dict]:
    ref = JUDGE_REFERENCE.format(reference=p.reference) if p.reference is not None else ""
    text = JUDGE_PROMPT.format(reference=ref, question=p.text, answer=answer)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": text}]


def parse_rating(reply: str) -> Optional[float]:
    """``Score: 7`` (or ``7/10``, or a reply that starts with the number) -> 7.0; anything else -> None."""
    m = _SCORE.search(reply) or _BARE.search(reply.strip())
    return float(m.group(1)) if m else None


class JudgeScorer:
    needs_reference = False

    def __init__(self, judge: Teacher, name: str = "judge", max_tokens: int = 16):
        self.judge, self.name = judge, name
        self.sampling = Sampling(temp=0.0, max_tokens=max_tokens)
        self.unparsed = 0  # replies that held no rating

    def score(self, items: list[Item]) -> list[Optional[float]]:
        replies = self.judge.complete([judge_messages(p, text) for p, text in items], self.sampling)
        out = []
        for r in replies:
            rating = parse_rating(r.text) if r.error is None else None
            self.unparsed += rating is None
            out.append(rating)
        return out

    def close(self) -> None:
        self.judge.close()


# ----------------------------------------------------------------------------------------------- logprob
class LogprobScorer:
    """Mean log-probability of the response tokens after the rendered prompt, under a local MLX model."""

    needs_reference = False

    def __init__(self, spec: str):
        if is_endpoint(spec):
            raise ConfigError("--scorer logprob:SPEC needs a local model (endpoints do not return prompt "
                              "log-probabilities in a standard way)")
        from mlxsft.backends import registry
        from mlxsft.backends.generation import hf_tokenizer
        from mlxsft.data.templates import resolve_chat_template
        from mlxsft.models import load_mlx

        self.loss = registry.part("mlx", "loss")  # first: a missing mlx / mlx-lm gives the install hint
        self.name = f"logprob:{spec}"
        self.model, tokenizer, _ = load_mlx(spec)
        self.model.eval()
        self.hf = hf_tokenizer(tokenizer)
        self.template = resolve_chat_template(self.hf, None)

    def score(self, items: list[Item]) -> list[Optional[float]]:
        return [self.score_one(p.messages, text) for p, text in items]

    def score_one(self, messages: list[dict], response: str) -> Optional[float]:
        import numpy as np

        from mlxsft.backends.generation import render_prompt

        answer = self.hf.encode(response, add_special_tokens=False)
        if not answer:
            return None
        prompt = render_prompt(self.hf, messages, self.template)
        ids = np.array([prompt + answer], np.int32)
        mask = np.zeros_like(ids, np.int8)
        mask[0, len(prompt):] = 1  # mask[t] = 1: token t is a scored target
        value = self.loss.mean_logprob(self.model, ids, mask)
        return value if math.isfinite(value) else None

    def close(self) -> None:
        self.model = None


# ----------------------------------------------------------------------------------------------- python
@dataclass
class PythonScorer:
    target: str  # "module:function" or "path/to/file.py:function"
    needs_reference: bool = False

    def __post_init__(self) -> None:
        self.name = f"python:{self.target}"
        self.fn = load_function(self.target)

    def score(self, items: list[Item]) -> list[Optional[float]]:
        out = []
        for p, text in items:
            try:
                value = self.fn(p.row, text)
            except Exception as e:  # the user's code: report it as one line naming the row
                raise ConfigError(f"{self.name} failed on {p.source}: {type(e).__name__}: {e}") from None
            if value is None:
                out.append(None)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{self.name} returned {type(value).__name__} for {p.source}; expected a number")
            out.append(float(value) if math.isfinite(value) else None)
        return out

    def close(self) -> None:
        pass


def load_function(target: str) -> Callable[[dict, str], Any]:
    module_name, _, fn_name = target.rpartition(":")
    if not module_name or not fn_name:
        raise ConfigError(f"--scorer python:{target}: expected python:MODULE:FUNCTION or python:FILE.py:FUNCTION")
    if module_name.endswith(".py"):
        path: Optional[Path] = Path(module_name).expanduser()
        if not path.is_file():
            raise ConfigError(f"--scorer python:{target}: file not found: {path}")
    else:  # NAME.py in the current folder, else an installed module
        local = Path(f"{module_name}.py")
        path = local if module_name.isidentifier() and local.is_file() else None
    try:
        module = load_module_file(path) if path is not None else importlib.import_module(module_name)
    except ConfigError:
        raise
    except Exception as e:  # ImportError, SyntaxError, or whatever the user's module raises on import
        raise ConfigError(f"--scorer python:{target}: cannot import {module_name} ({type(e).__name__}: {e})") \
            from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ConfigError(f"--scorer python:{target}: {module_name} has no function {fn_name}")
    return fn


def load_module_file(path: Path) -> Any:
    """Execute one ``.py`` file as a module, by its path: nothing is added to ``sys.path``, so the file's own
    imports resolve exactly as they would without it (a stray ``json.py`` beside it is never picked up)."""
    name = f"mlxsft_user_scorer_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise ConfigError(f"--scorer python:{path}: cannot load this file as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as `import` does: dataclasses and pickling look the module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
