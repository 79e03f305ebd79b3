"""Quality heuristics: each planted bad response is caught for the right reason; ordinary answers pass."""

from __future__ import annotations

import json

import pytest

from mlxsft.data.bundled_paths import bundled_path
from mlxsft.curate.quality import (QualityChecks, QualityOptions, approx_tokens, compression_ratio,
                                          repeated_ngram_share)

GOOD = [
    "The capital of France is Paris.",
    "42",
    "To boil an egg, place it in boiling water for 7 to 9 minutes, then cool it in cold water so it peels easily.",
    "def add(a, b):\n    return a + b",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. It happens in the chloroplasts, "
    "where chlorophyll absorbs mostly red and blue light.",
    "日本の首都は東京です。",
]
BAD = [
    ("", "too_short"),
    ("word " * 5000, "too_long"),
    ("The cat sat on the mat. " * 20, "repetition"),
    ("I think that I think that I think that I think that I think that I think that", "repetition"),
    ("ab" * 400, "garbage"),  # one 800-character "word"
    ("na" * 50 + " " + "na" * 50 + " " + "na" * 50 + " " + "nanana " * 60, "repetition"),
    ("Caf\ufffd au lait", "garbage"),
    ("Hello\x00world", "garbage"),
    ("#$%^&*@!~`|\\ ^^ ~~ @@ ## $$ %% ^& *( )_ +{ }| :\" <> ? »« ¤¤ §§ ¶¶", "garbage"),
    ("As an AI language model, I do not have opinions about football.", "refusal"),
    ("I'm sorry, but I can't help with that request.", "refusal"),
    ("I cannot assist with creating that content.", "refusal"),
    ("I was trained by OpenAI and my knowledge cutoff is 2021.", "refusal"),
]


@pytest.mark.parametrize("text, reason", BAD)
def test_planted_bad_responses_fail_for_the_right_reason(text, reason):
    assert QualityChecks(QualityOptions(min_tokens=1, max_tokens=2048)).reason(text) == reason


@pytest.mark.parametrize("text", GOOD)
def test_ordinary_answers_pass(text):
    assert QualityChecks(QualityOptions()).reason(text) is None


def test_switches_turn_checks_off_and_bounds_are_inclusive():
    loop = "The cat sat on the mat. " * 20
    assert QualityChecks(QualityOptions(max_repeat=1.0, min_compression=0)).reason(loop) is None
    assert QualityChecks(QualityOptions(refusals=False)).reason("As an AI language model, sure.") is None
    assert QualityChecks(QualityOptions(garbage=False)).reason("Caf\ufffd") is None
    assert approx_tokens("Hello, world!") == 4
    bounds = QualityChecks(QualityOptions(min_tokens=4, max_tokens=4))
    assert [bounds.reason(t) for t in ("Hello, world!", "Hello world!", "Hello, big world!")] == \
        [None, "too_short", "too_long"]


def test_measures():
    assert repeated_ngram_share("a b c a b c a b c") == pytest.approx(1 - 3 / 7)
    assert repeated_ngram_share("one two three four five six") == 0.0
    assert compression_ratio("abc" * 300) < 0.05


def test_the_bundled_training_set_passes_almost_untouched():
    """False-positive check on the real rows written for training: at most 1% may be flagged."""
    checks = QualityChecks(QualityOptions())
    rows = [json.loads(line) for line in bundled_path("train").read_text().splitlines()]
    answers = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
    flagged = [(a, checks.reason(a)) for a in answers if checks.reason(a) is not None]
    assert len(answers) > 300 and len(flagged) <= len(answers) // 100, flagged


def test_the_fast_paths_agree_with_the_plain_regex_definitions():
    """is_refusal's substring hints never drop a match of the patterns; the ASCII shortcuts of the repetition and
    symbol counts give the same numbers as the regexes, on random texts built from the patterns' own fragments."""
    import random
    import re
    import unicodedata

    from mlxsft.curate.quality import _SYMBOL, _WORDS, REFUSAL_PATTERNS, is_garbage, is_refusal

    # one sentence each pattern matches, then edited at random: words dropped, swapped or put in
    refusals = ["As an AI language model I can't", "as a large language model", "I'm just an AI", "I am an AI",
                "I'm sorry, but I can't help", "I am afraid I will not", "I cannot assist", "I won't comply",
                "I'm unable to help", "I am not able to fulfil that", "I don't have personal opinions",
                "trained by OpenAI", "my knowledge cutoff", "It’s not appropriate for me to say",
                "Ünïcode İs fine_x_ #! -- the egg"]
    rng = random.Random(0)
    found = 0
    for _ in range(3000):
        words = " ".join(rng.sample(refusals, 2)).split()
        for _ in range(rng.randint(0, 3)):
            i = rng.randrange(len(words))
            edit = rng.random()
            if edit < 0.3:
                del words[i]
            elif edit < 0.6:
                words.insert(i, rng.choice(words))
            else:
                words[i] = words[i].upper() if edit < 0.8 else rng.choice(words)
        text = " ".join(words)
        low = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
        expected = any(p.search(low) for p in REFUSAL_PATTERNS)
        found += expected
        assert is_refusal(text) == expected, text
        words = [w.lower() for w in _WORDS.findall(text)]
        grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        share = 1.0 - len(set(grams)) / len(grams) if len(words) >= 6 else 0.0
        assert repeated_ngram_share(text) == share, text
        alnum = 1.0 - len(_SYMBOL.findall(text)) / len(text)
        longest = max((len(w) for w in text.split()), default=0)
        assert is_garbage(text) == ("\ufffd" in text or not text.strip() or alnum < 0.5 or longest > 120
                                    or bool(re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", text))), text
    assert 500 < found < 2900  # the edits make and break refusals: the comparison covers both answers
