"""Response-quality heuristics for ``mlxsft data filter``: length bounds, repetition loops, refusals and
boilerplate, garbage text. Each check returns the reason a row fails, or None.

    checks = QualityChecks(QualityOptions(min_tokens=2, max_tokens=2048))
    checks.reason("Sure! " * 200)           # "repetition"
    checks.reason("As an AI language model, I cannot ...")     # "refusal"

Tokens are counted with ``count_tokens`` (default: a word-and-punctuation regex, close to a subword count for
English; ``mlxsft data filter --tokenizer MODEL`` counts the model's real tokens).

Repetition is caught two ways: the share of word n-grams (``ngram``, default 3) that repeat an earlier one
(a looping answer repeats most of its n-grams; ordinary prose well under 20%), and, for long texts without
words to split (character loops such as ``abababab``), a zlib compression ratio below ``min_compression``.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

_WORD_OR_PUNCT = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORDS = re.compile(r"\w+", re.UNICODE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # Unicode category Cc, less \t \n \r
_SYMBOL = re.compile(r"[^\w\s]|_")  # neither a letter, a digit nor whitespace

# Phrases that mark an assistant refusing, or a canned AI disclaimer instead of an answer. Lowercase text is matched.
REFUSAL_PATTERNS = tuple(re.compile(p) for p in (
    r"\bas an ai\b(?: language model| assistant| model)?",
    r"\bas a (?:large )?language model\b",
    r"\bi(?:'m| am) (?:just )?an ai\b",
    r"\bi(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can(?:no|')t|am unable to|won't|will not)\b",
    r"^\s*i (?:can(?:no|')t|won't|will not) (?:help|assist|provide|comply|do that|answer)\b",
    r"\bi(?:'m| am) (?:not able|unable) to (?:help|assist|provide|comply|fulfil|fulfill)\b",
    r"\bi don't have (?:personal )?(?:opinions|feelings|emotions|the ability to)\b",
    r"\b(?:trained|developed|created) by openai\b",
    r"\bmy (?:knowledge )?cutoff\b",
    r"\bit(?:'s| is) not appropriate for me to\b",
))
# Text every match of the patterns above contains (one per pattern or more): a response holding none of them is no
# refusal, found with a few substring tests instead of ten regex scans. test_quality checks each pattern has one.
REFUSAL_HINTS = ("an ai", "language model", "sorry", "afraid", "i can", "i won't", "i will not", "able to",
                 "don't have", "openai", "cutoff", "appropriate for me")
# The ASCII characters _SYMBOL matches, for counting them in ASCII text with bytes.translate.
_ASCII_SYMBOLS = bytes(c for c in range(128) if _SYMBOL.match(chr(c)))


@dataclass
class QualityOptions:
    min_tokens: int = 1  # response tokens, inclusive
    max_tokens: Optional[int] = 4096
    ngram: int = 3
    max_repeat: float = 0.3  # share of repeated word n-grams above which a response is a loop (1 disables)
    min_compression: float = 0.1  # zlib size / text size below which a long text is a loop (0 disables)
    refusals: bool = True
    garbage: bool = True
    min_alnum: float = 0.5  # share of letters, digits and whitespace below which a text is symbol soup
    max_word_chars: int = 120  # a run of non-space characters this long (not a URL) is garbage


def approx_tokens(text: str) -> int:
    return len(_WORD_OR_PUNCT.findall(text))


class QualityChecks:
    def __init__(self, opts: QualityOptions, count_tokens: Callable[[str], int] = approx_tokens):
        self.opts = opts
        self.count_tokens = count_tokens

    def reason(self, response: str) -> Optional[str]:
        """The first failed check, in the order: too_short, too_long, garbage, repetition, refusal."""
        o = self.opts
        n = self.count_tokens(response)
        if n < o.min_tokens:
            return "too_short"
        if o.max_tokens is not None and n > o.max_tokens:
            return "too_long"
        if o.garbage and is_garbage(response, o.min_alnum, o.max_word_chars):
            return "garbage"
        if is_repetitive(response, o.ngram, o.max_repeat, o.min_compression):
            return "repetition"
        if o.refusals and is_refusal(response):
            return "refusal"
        return None


def repeated_ngram_share(text: str, n: int = 3) -> float:
    """Share of word n-grams that already occurred earlier in the text (0 for texts under 2n words)."""
    # lowercasing whole ASCII text finds the same words; beyond ASCII it may not ("İ" lowers to two characters)
    words = _WORDS.findall(text.lower()) if text.isascii() else [w.lower() for w in _WORDS.findall(text)]
    if len(words) < 2 * n:
        return 0.0
    total = len(words) - n + 1
    return 1.0 - len(set(zip(*(words[i:] for i in range(n))))) / total


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(zlib.compress(data, 9)) / max(1, len(data))


def is_repetitive(text: str, ngram: int = 3, max_repeat: float = 0.3, min_compression: float = 0.1) -> bool:
    if max_repeat < 1.0 and repeated_ngram_share(text, ngram) > max_repeat:
        return True
    # zlib's fixed overhead dominates short strings, so the ratio means something from a few hundred bytes on
    return min_compression > 0 and len(text) >= 256 and compression_ratio(text) < min_compression


def is_refusal(text: str) -> bool:
    low = (text if text.isascii() else unicodedata.normalize("NFKC", text)).lower().replace("\u2019", "'")
    return any(h in low for h in REFUSAL_HINTS) and any(p.search(low) for p in REFUSAL_PATTERNS)


def is_garbage(text: str, min_alnum: float = 0.5, max_word_chars: int = 120) -> bool:
    """Mojibake, control characters, symbol soup, or one endless 'word'."""
    if "\ufffd" in text:  # U+FFFD: bytes that were not valid text
        return True
    if _CONTROL.search(text) or not text.strip():
        return True
    # code and arithmetic stay well above 50% ("x = a[i] * (b + c);" is 63%), symbol soup falls below
    if text.isascii():
        data = text.encode("ascii")
        symbols = len(data) - len(data.translate(None, _ASCII_SYMBOLS))
    else:
        symbols = len(_SYMBOL.findall(text))
    if 1.0 - symbols / len(text) < min_alnum:
        return True
    words = text.split()
    if max(map(len, words), default=0) <= max_word_chars:  # the common case, without a generator per word
        return False
    longest = max((w for w in words if not w.startswith(("http://", "https://"))), key=len, default="")
    return len(longest) > max_word_chars
