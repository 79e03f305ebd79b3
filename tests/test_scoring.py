"""Answer scoring: exact, numeric and contains match, on hand-checked cases."""

from __future__ import annotations

import pytest

from mlxsft.scoring import LEGEND, MARKS, contains_match, exact_match, normalize, numeric_match, score, similarity, verdict


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
    # word and number boundaries: a reference inside a longer word or number is not contained
    ("110 cm", "11", False),
    ("11.5 meters", "11", False),
    ("-11", "11", False),
    ("1,100", "100", False),
    ("Parisian food", "Paris", False),
    ("the answer is 11.", "11", True),
    ("It is 11. Yes.", "11", True),
    ("x=11, y=2", "11", True),
    ("cats and dogs", "cat", False),
])
def test_contains_match(answer, reference, expected):
    assert contains_match(answer, reference) is expected


def test_score_reports_every_measure():
    assert score("The answer is 42.", "42") == {"exact": False, "numeric": True, "contains": True,
                                                 "similarity": pytest.approx(2 * 0.25 * 1 / 1.25)}
    assert score("42", "42") == {"exact": True, "numeric": True, "contains": True, "similarity": 1.0}


@pytest.mark.parametrize("answer, reference, expected", [
    ("the cat sat", "the cat sat", 1.0),
    ("a dog", "the cat", 0.0),
    ("the cat", "the cat sat on the mat", pytest.approx(2 * 1.0 * (2 / 6) / (1 + 2 / 6))),
])
def test_similarity_is_word_f1(answer, reference, expected):
    assert similarity(answer, reference) == expected


@pytest.mark.parametrize("answer, reference, expected", [
    ("Paris", "Paris", "right"),
    ("The answer is 4", "4", "right"),  # numeric match
    ("I think it is Paris, France", "Paris", "partial"),  # contains
    ("the cat sat on a mat", "the cat sat on the mat", "partial"),  # F1 0.83, not exact
    ("110 cm", "11", "wrong"),
    ("Lyon", "Paris", "wrong"),
])
def test_verdict(answer, reference, expected):
    assert verdict(score(answer, reference)) == expected
    assert MARKS[expected] in LEGEND


def test_normalize_is_idempotent():
    for text in ["  Hello,  World!! ", "'x'", "Ünïcode."]:
        assert normalize(normalize(text)) == normalize(text)
