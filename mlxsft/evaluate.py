"""Held-out questions and the before/after comparison (backend-neutral).

A questions file is JSONL with ``question`` (or ``messages``) and an optional ``reference``.
``compare(answer_base, answer_tuned, questions)`` asks both models every question and scores
exact / numeric / contains match where a reference exists. The answer functions come from a backend
(``mlxsft.backends.mlx.generate``), so MLX and torch share this code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from mlxsft.errors import DataError
from mlxsft.scoring import score


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
    rows = [CompareRow(question=q.text, reference=q.reference, answers={}) for q in questions]
    total = len(questions) * len(answerers)
    done = 0
    for name, answer in answerers.items():
        for q, row in zip(questions, rows):
            a = answer(q.messages)
            row.answers[name] = a.text
            row.tokens[name] = a.tokens
            row.tokens_per_sec[name] = a.tokens_per_sec
            if q.reference is not None:
                row.scores[name] = score(a.text, q.reference)
            done += 1
            if progress:
                progress(done, total)
    return CompareReport(rows=rows, models=list(answerers))
