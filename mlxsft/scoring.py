"""Scoring an answer against a reference: exact match, numeric match, contains.

Backend-neutral; shared by the before/after table of ``mlxsft train``, ``mlxsft eval`` and curation.
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
    return normalize(reference) in normalize(answer)


def score(answer: str, reference: str) -> dict[str, bool]:
    return {"exact": exact_match(answer, reference), "numeric": numeric_match(answer, reference),
            "contains": contains_match(answer, reference)}
