"""Scoring an answer against a reference: exact match, numeric match, contains, and the verdict they give.

Backend-neutral; shared by the before/after table of ``mlxsft train``, ``mlxsft eval``, ``compare.json`` and
curation. ``contains`` matches on word and number boundaries: "110 cm" does not contain "11", "11.5" does not
contain "11", "the answer is 11." does. The verdict is one of ``right`` (exact or numeric match, shown ✓),
``partial`` (the reference appears inside a longer answer, ~) and ``wrong`` (✗).
"""

from __future__ import annotations

import re
import unicodedata

_NUM = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def normalize(text: str) -> str:
    """Lowercase, trim, collapse spaces, drop trailing punctuation and wrapping quotes."""
    t = unicodedata.normalize("NFKC", text).strip().lower()
    t = " ".join(t.split())
    t = t.strip("\"'`")
    return t.rstrip(".!").strip()


def exact_match(answer: str, reference: str) -> bool:
    return normalize(answer) == normalize(reference)


def _numbers(text: str) -> list[float]:
    out = []
    for m in _NUM.findall(text):
        try:
            out.append(float(m.replace(",", "")))
        except ValueError:
            pass
    return out


def numeric_match(answer: str, reference: str, tol: float = 1e-6) -> bool:
    """The reference is a number and the answer's last number equals it."""
    ref = _numbers(reference)
    if len(ref) != 1 or normalize(reference).replace(",", "") != _NUM.findall(normalize(reference))[0].replace(",", ""):
        return False
    got = _numbers(answer)
    return bool(got) and abs(got[-1] - ref[0]) <= tol * max(1.0, abs(ref[0]))


def contains_match(answer: str, reference: str) -> bool:
    """The normalized reference occurs in the answer as whole words (and whole numbers)."""
    ref = normalize(reference)
    if not ref:
        return False
    # Not inside a longer word or number: no letter/digit next to it, and for numbers no "1." / ".5" either side.
    before = r"(?<![\w])(?<!\d[.,])" + (r"(?<!-)" if ref[0].isdigit() else "")
    after = r"(?![\w])(?![.,]\d)"
    return re.search(before + re.escape(ref) + after, normalize(answer)) is not None


_WORD = re.compile(r"\w+")


def similarity(answer: str, reference: str) -> float:
    """Word-overlap F1 of answer and reference (SQuAD's measure): 1.0 for the same words, 0.0 for none shared.
    For free-form references (a user's own validation answers), where exact match is too strict to mean much."""
    from collections import Counter

    a, r = Counter(_WORD.findall(normalize(answer))), Counter(_WORD.findall(normalize(reference)))
    common = sum((a & r).values())
    if not common:
        return 0.0
    precision, recall = common / sum(a.values()), common / sum(r.values())
    return 2 * precision * recall / (precision + recall)


def score(answer: str, reference: str) -> dict[str, bool | float]:
    return {"exact": exact_match(answer, reference), "numeric": numeric_match(answer, reference),
            "contains": contains_match(answer, reference), "similarity": similarity(answer, reference)}


VERDICTS = ("right", "partial", "wrong")
MARKS = {"right": "✓", "partial": "~", "wrong": "✗"}
PARTIAL_SIMILARITY = 0.5  # word-overlap F1 from which a free-form answer counts as partly right
LEGEND = ("✓ right (exact or numeric match)  ~ partly: the reference among other words, or half its words "
          "(F1 ≥ 0.5)  ✗ wrong")


def verdict(scores: dict[str, bool | float]) -> str:
    """``right`` | ``partial`` | ``wrong`` from ``score``'s result."""
    if scores.get("exact") or scores.get("numeric"):
        return "right"
    if scores.get("contains") or float(scores.get("similarity") or 0.0) >= PARTIAL_SIMILARITY:
        return "partial"
    return "wrong"
