"""Answer scoring: exact, numeric and contains match, on hand-checked cases."""

from __future__ import annotations

import pytest

from mlxsft.scoring import contains_match, exact_match, normalize, numeric_match, score


@pytest.mark.parametrize("answer, reference, expected", [
    ("Paris", "Paris", True),
    ("  paris. ", "Paris", True),  # case, spaces, trailing period
    ('"Paris"', "Paris", True),  # wrapping quotes
    ("Paris!", "paris.", True),
    ("The capital is Paris.", "Paris", False),
    ("Pari", "Paris", False),
    ("Ｐａｒｉｓ", "Paris", True),  # NFKC folds full-width letters
])
def test_exact_match(answer, reference, expected):
    assert exact_match(answer, reference) is expected


@pytest.mark.parametrize("answer, reference, expected", [
    ("4", "4", True),
    ("2 + 2 = 4", "4", True),  # the last number counts
    ("It is 4.0", "4", True),
    ("1,000 people", "1000", True),
    ("-3", "-3", True),
    ("3", "-3", False),
    ("4 or maybe 5", "4", False),
    ("no number here", "4", False),
    ("4", "four", False),  # a non-numeric reference never matches numerically
    ("12", "12 apples", False),  # nor does a reference with words
    ("0.30000000000000004", "0.3", True),  # float tolerance
])
def test_numeric_match(answer, reference, expected):
    assert numeric_match(answer, reference) is expected


@pytest.mark.parametrize("answer, reference, expected", [
    ("The capital of France is Paris.", "Paris", True),
    ("PARIS, of course", "paris", True),
    ("Lyon", "Paris", False),
])
def test_contains_match(answer, reference, expected):
    assert contains_match(answer, reference) is expected


def test_score_reports_all_three():
    assert score("The answer is 42.", "42") == {"exact": False, "numeric": True, "contains": True}
    assert score("42", "42") == {"exact": True, "numeric": True, "contains": True}


def test_normalize_is_idempotent():
    for text in ["  Hello,  World!! ", "'x'", "Ünïcode."]:
        assert normalize(normalize(text)) == normalize(text)
