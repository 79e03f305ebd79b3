"""What SFT changed: the learned-answer totals of a before/after comparison and the forgetting score.

    totals = learned_totals(report)          # wins / regressions / unchanged, per category, stop rates
    forgetting = measure_forgetting(prompts, base_answers, drift, render)   # KL(base || tuned) per token

Backend-neutral. A *win* is a question the base model got wrong and the tuned model right (verdict ``right``,
``mlxsft.scoring.verdict``), a *regression* the reverse; everything else is unchanged. Open questions (no
reference) are counted apart: they are read, not scored.

The forgetting score measures how far the tuned model drifted from the base on general prompts outside the
training data: the base model answers them greedily, and on those answer tokens the mean per-token
KL(base || tuned) and the NLL the tuned model gives them are computed (the base's own NLL is the floor). No
teacher and no network are needed, and it is 0 for a model against itself. ``drift`` does the arithmetic once;
each backend only gives the log-probabilities at the answer positions (``backends/<name>/divergence.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

Sequence = tuple[list[int], list[int]]  # (prompt ids, answer ids)
DriftSums = tuple[float, float, float, int]  # (sum KL, sum tuned NLL, sum base NLL, answer tokens)
DriftFn = Callable[[list[Sequence]], DriftSums]
LogProbs = Callable[[Any, list[int], list[int]], Any]  # (view, prompt, answer) -> numpy (len(answer), vocab)


def drift(logprobs: LogProbs, base: Any, tuned: Any, sequences: list[Sequence]) -> DriftSums:
    """Sums over every answer token of KL(base || tuned) between the two next-token distributions and of
    each model's NLL of the token (float64; ``measure_forgetting`` divides)."""
    import numpy as np

    kl = tuned_nll = base_nll = 0.0
    n = 0
    for prompt, answer in sequences:
        if not prompt or not answer:
            continue
        lb = logprobs(base, prompt, answer).astype(np.float64)
        lt = logprobs(tuned, prompt, answer).astype(np.float64)
        rows = np.arange(len(answer))
        kl += float((np.exp(lb) * (lb - lt)).sum())
        tuned_nll -= float(lt[rows, answer].sum())
        base_nll -= float(lb[rows, answer].sum())
        n += len(answer)
    return kl, tuned_nll, base_nll, n


def _tally(rows: list[Any], before: str, after: str) -> dict[str, int]:
    wins = sum(r.verdicts[before] != "right" and r.verdicts[after] == "right" for r in rows)
    regressions = sum(r.verdicts[before] == "right" and r.verdicts[after] != "right" for r in rows)
    return {"questions": len(rows), "wins": wins, "regressions": regressions,
            "unchanged": len(rows) - wins - regressions,
            "right_before": sum(r.verdicts[before] == "right" for r in rows),
            "right_after": sum(r.verdicts[after] == "right" for r in rows)}


def learned_totals(report: Any, before: str = "base", after: str = "tuned") -> Optional[dict[str, Any]]:
    """Wins, regressions and unchanged overall and per category, and each model's stop rate; None unless the
    report compares ``before`` with ``after``."""
    if before not in report.models or after not in report.models:
        return None
    scored = [r for r in report.rows if r.reference is not None]
    categories = sorted({r.category or "uncategorized" for r in scored})
    per_category = {c: _tally([r for r in scored if (r.category or "uncategorized") == c], before, after)
                    for c in categories}
    return {**_tally(scored, before, after), "per_category": per_category,
            "open_questions": len(report.rows) - len(scored),
            "stop_rate": {m: report.stop_rate(m) for m in (before, after)},
            "stop_rate_scored": {m: report.stop_rate(m, scored_only=True) for m in (before, after)}}


OUTCOMES = ("regression", "win", "unchanged", "scored", "open")  # the reading order


def outcome(row: Any, before: str = "base", after: str = "tuned") -> str:
    """What SFT did to one question: ``regression``, ``win`` or ``unchanged``; ``open`` without a reference;
    ``scored`` when the row lacks ``before`` or ``after`` (a report of one model)."""
    if row.reference is None:
        return "open"
    if before not in row.verdicts or after not in row.verdicts:
        return "scored"
    was, now = row.verdicts[before] == "right", row.verdicts[after] == "right"
    return "regression" if was and not now else "win" if now and not was else "unchanged"


def regressions_first(report: Any, before: str = "base", after: str = "tuned") -> list[Any]:
    """Rows in the order a reader wants them: regressions, then wins, then unchanged scored rows, then the
    open questions; the file order inside each group."""
    rank = {"regression": 0, "win": 1, "unchanged": 2, "scored": 3, "open": 3}
    return sorted(report.rows, key=lambda r: rank[outcome(r, before, after)])


# ----------------------------------------------------------------------------- forgetting
@dataclass
class Forgetting:
    kl: float  # mean per-token KL(base || tuned), nats
    tuned_nll: float  # mean NLL per token of the base's answers under the tuned model
    base_nll: float  # ... under the base model itself (the floor tuned_nll rises from)
    prompts: int
    tokens: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_forgetting(prompts: list[list[dict]], base_answers: Callable[[list[list[dict]]], list[Any]],
                       drift: DriftFn, render: Callable[[list[dict]], list[int]]) -> Forgetting:
    """The base answers ``prompts`` greedily; ``drift`` scores both models on those answers."""
    answers = base_answers(prompts)
    sequences = [(render(p), list(a.token_ids)) for p, a in zip(prompts, answers) if getattr(a, "token_ids", None)]
    kl, tuned_nll, base_nll, n = drift(sequences) if sequences else (0.0, 0.0, 0.0, 0)
    if n == 0:
        from mlxsft.errors import MlxsftError

        raise MlxsftError("the forgetting score has no tokens: the base model gave only empty answers")
    return Forgetting(kl=kl / n, tuned_nll=tuned_nll / n, base_nll=base_nll / n, prompts=len(sequences), tokens=n)


def describe(totals: Optional[dict], forgetting: Optional[Forgetting]) -> str:
    """One line: "learned +12 (14 wins, 2 regressions, 34 unchanged) · forgot KL 0.041 nats/token"."""
    parts = []
    if totals is not None:
        net = totals["wins"] - totals["regressions"]
        parts.append(f"learned {net:+d} ({totals['wins']} wins, {totals['regressions']} regressions, "
                     f"{totals['unchanged']} unchanged of {totals['questions']})")
        scored, every = totals.get("stop_rate_scored") or {}, totals.get("stop_rate") or {}
        if scored and all(v is not None for v in scored.values()):
            line = "stopped at end of turn: " + ", ".join(f"{m} {v:.0%}" for m, v in scored.items())
            if totals.get("open_questions"):
                line += " (with the open questions: " + ", ".join(f"{m} {v:.0%}" for m, v in every.items()) + ")"
            parts.append(line)
    if forgetting is not None:
        parts.append(f"forgot KL {forgetting.kl:.3f} nats/token (NLL of the base's answers {forgetting.base_nll:.2f}"
                     f" -> {forgetting.tuned_nll:.2f}, {forgetting.prompts} general prompts)")
    return " · ".join(parts)
