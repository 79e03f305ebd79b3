"""Generate the bundled dataset: ``train.jsonl``, ``valid.jsonl`` and ``eval.jsonl``.

Run it from the repository root; it rewrites the three files byte for byte (fixed seed, stdlib only)::

    python -m mlxsft.data.bundled.make_dataset            # into this folder
    python -m mlxsft.data.bundled.make_dataset --out DIR  # somewhere else (the tests compare the bytes)

Two kinds of rows are mixed:

* verifiable tasks drawn here (arithmetic, unit conversions, string and list manipulation, dates), whose
  assistant turn is exactly the canonical answer and nothing else, so that exact match on ``eval.jsonl``
  means something and a tuned model learns a crisp format;
* hand-written instruction-following and explanation conversations from ``handwritten.py``.

Every instance (task and operands, not just its wording) is used at most once across all splits, so an
eval question is never a rephrased train prompt.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import json
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

from mlxsft.data.bundled.handwritten import CONVERSATIONS, OPEN_QUESTIONS

SEED = 20240601
HERE = Path(__file__).resolve().parent

# Every VALID_EVERY-th hand-written conversation goes to valid.jsonl; the rest to train.jsonl.
VALID_EVERY = 9
# Every MULTI_TURN_EVERY-th verifiable train/valid row gets a follow-up turn (20%).
MULTI_TURN_EVERY = 5
# Every SYSTEM_EVERY-th verifiable train/valid row carries a system instruction.
SYSTEM_EVERY = 20
SYSTEM_PROMPTS = (
    "You are a concise assistant. Reply with only the answer.",
    "Answer with the result only, no explanation.",
    "You are a precise calculator and text tool. Give just the final answer.",
)
FOLLOW_UPS = ("Now do the same for {subject}.", "And for {subject}?", "Same question for {subject}.")

Ops = tuple


@dataclass(frozen=True)
class Task:
    """One kind of verifiable question: how to draw operands, phrase them and answer them."""

    name: str
    category: str
    draw: Callable[[random.Random], Ops]
    fields: Callable[[Ops], dict[str, str]]
    answer: Callable[[Ops], str]
    prompts: tuple[str, ...]
    subject: str  # how a "do the same for ..." follow-up names a new instance
    key: Callable[[Ops], Hashable] = lambda ops: ops  # what makes two instances the same question
    kind: Callable[[Ops], Hashable] = lambda ops: None  # a follow-up keeps the same kind (unit pair...)


# ---------------------------------------------------------------------------------------------- arithmetic


def _draw_add_sub(rng: random.Random) -> Ops:
    while True:
        nums = [rng.randint(1, 99) for _ in range(rng.choice((2, 2, 3)))]
        signs = [rng.choice("+-") for _ in nums[1:]]
        if _add_sub(nums, signs) >= 0:  # keep results non-negative: one thing less for a 135M model
            return tuple(nums), tuple(signs)


def _add_sub(nums, signs) -> int:
    total = nums[0]
    for sign, n in zip(signs, nums[1:]):
        total = total + n if sign == "+" else total - n
    return total


def _expr(ops: Ops, sep: str) -> str:
    nums, signs = ops
    parts = [str(nums[0])]
    for sign, n in zip(signs, nums[1:]):
        parts += [sign, str(n)]
    return sep.join(parts)


ADD_SUB = Task(
    name="add_sub", category="arithmetic", draw=_draw_add_sub,
    fields=lambda ops: {"expr": _expr(ops, ""), "spaced": _expr(ops, " ")},
    answer=lambda ops: str(_add_sub(*ops)),
    prompts=("Calculate {expr}", "What is {spaced}?", "Compute {expr}.", "{spaced} = ?", "Work out {spaced}.",
             "Evaluate {expr}."),
    subject="{expr}",
)

MULTIPLY = Task(
    name="multiply", category="arithmetic",
    draw=lambda rng: (rng.randint(2, 12), rng.randint(2, 15)),
    fields=lambda ops: {"a": str(ops[0]), "b": str(ops[1])},
    answer=lambda ops: str(ops[0] * ops[1]),
    prompts=("What is {a} times {b}?", "Calculate {a}*{b}", "Multiply {a} by {b}.",
             "What is the product of {a} and {b}?"),
    subject="{a}*{b}",
)

# ---------------------------------------------------------------------------------------------- conversions

# (singular, plural, abbreviation or "", target singular, target plural, factor)
UNITS = (
    ("kilometer", "kilometers", "km", "meter", "meters", 1000),
    ("meter", "meters", "m", "centimeter", "centimeters", 100),
    ("centimeter", "centimeters", "cm", "millimeter", "millimeters", 10),
    ("kilogram", "kilograms", "kg", "gram", "grams", 1000),
    ("liter", "liters", "L", "milliliter", "milliliters", 1000),
    ("hour", "hours", "", "minute", "minutes", 60),
    ("minute", "minutes", "", "second", "seconds", 60),
    ("day", "days", "", "hour", "hours", 24),
    ("week", "weeks", "", "day", "days", 7),
    ("year", "years", "", "month", "months", 12),
    ("foot", "feet", "", "inch", "inches", 12),
    ("dollar", "dollars", "", "cent", "cents", 100),
)


def _draw_convert(rng: random.Random) -> Ops:
    unit = rng.randrange(len(UNITS))
    reverse = rng.random() < 0.3  # mostly big -> small, sometimes back (e.g. 5000 grams -> kilograms)
    return unit, reverse, rng.randint(1, 20), rng.random() < 0.5


def _convert_fields(ops: Ops) -> dict[str, str]:
    unit, reverse, k, abbreviate = ops
    one, many, abbr, t_one, t_many, factor = UNITS[unit]
    if reverse:
        return {"q": f"{k * factor} {t_one if k * factor == 1 else t_many}", "to": many}
    name = abbr if abbreviate and abbr else (one if k == 1 else many)
    return {"q": f"{k} {name}", "to": t_many}


CONVERT = Task(
    name="convert", category="conversion", draw=_draw_convert, fields=_convert_fields,
    answer=lambda ops: str(ops[2] if ops[1] else ops[2] * UNITS[ops[0]][5]),
    prompts=("Convert {q} to {to}.", "How many {to} are in {q}?", "{q} is how many {to}?", "Express {q} in {to}.",
             "What is {q} in {to}?"),
    subject="{q}",
    key=lambda ops: ops[:3],
    kind=lambda ops: ops[:2],
)

# ---------------------------------------------------------------------------------------------- strings

# Short common words, no palindromes, so reversing always changes them.
WORDS = (
    "apple", "planet", "garden", "river", "candle", "silver", "window", "pencil", "rocket", "forest", "butter",
    "cactus", "dragon", "engine", "falcon", "guitar", "harbor", "island", "jacket", "kitten", "ladder", "magnet",
    "napkin", "orange", "pepper", "quartz", "rabbit", "saddle", "tomato", "umbrella", "velvet", "walnut",
    "yellow", "zipper", "banana", "cherry", "puzzle", "coffee", "letter", "mirror", "bottle", "carpet", "dinner",
    "frozen", "hammer", "jungle", "kettle", "lemon", "monkey", "number", "button", "pillow", "shadow", "summer",
    "ticket", "violet", "winter", "anchor", "basket", "circle", "desert", "finger", "ginger", "honey", "insect",
    "marble", "needle", "office", "parrot", "rubber", "school", "turtle", "valley", "wizard", "cloud", "bread",
    "chair", "grape", "house", "mouse", "piano", "queen", "stone", "tiger", "water", "zebra", "light", "music",
    "ocean", "paper", "table", "train", "sugar", "spoon", "robot", "pizza", "horse", "flame", "melon",
)
NTH = ("first", "second", "third", "last")


def _draw_count_letter(rng: random.Random) -> Ops:
    word = rng.choice(WORDS)
    letters = sorted(set(word))
    repeated = [c for c in letters if word.count(c) > 1]
    # Mostly ask about a repeated letter, where counting is the point of the question.
    return word, rng.choice(repeated if repeated and rng.random() < 0.7 else letters)


def _nth_letter(ops: Ops) -> str:
    word, nth = ops
    return word[-1] if nth == "last" else word[NTH.index(nth)]


REVERSE = Task(
    name="reverse", category="string", draw=lambda rng: (rng.choice(WORDS),),
    fields=lambda ops: {"w": ops[0]}, answer=lambda ops: ops[0][::-1],
    prompts=("Reverse the string '{w}'.", "Spell '{w}' backwards.", "What is '{w}' written backwards?",
             "Write the letters of '{w}' in reverse order."),
    subject="'{w}'",
)

LENGTH = Task(
    name="length", category="string", draw=lambda rng: (rng.choice(WORDS),),
    fields=lambda ops: {"w": ops[0]}, answer=lambda ops: str(len(ops[0])),
    prompts=("How many letters are in '{w}'?", "Count the letters in the word '{w}'.",
             "What is the length of the string '{w}'?"),
    subject="'{w}'",
)

COUNT_LETTER = Task(
    name="count_letter", category="string", draw=_draw_count_letter,
    fields=lambda ops: {"w": ops[0], "c": ops[1]}, answer=lambda ops: str(ops[0].count(ops[1])),
    prompts=("How many times does the letter '{c}' appear in '{w}'?", "Count the letter '{c}' in '{w}'.",
             "How many '{c}' characters are in the word '{w}'?"),
    subject="the letter '{c}' in '{w}'",
)

NTH_LETTER = Task(
    name="nth_letter", category="string", draw=lambda rng: (rng.choice(WORDS), rng.choice(NTH)),
    fields=lambda ops: {"w": ops[0], "n": ops[1]}, answer=_nth_letter,
    prompts=("What is the {n} letter of '{w}'?", "Which letter comes {n} in '{w}'?",
             "Give the {n} letter of the word '{w}'."),
    subject="the {n} letter of '{w}'",
)

JOIN = Task(
    name="join", category="string",
    draw=lambda rng: (tuple(rng.sample(WORDS, rng.choice((3, 3, 4)))), rng.choice(("-", "_"))),
    fields=lambda ops: {"lst": ", ".join(ops[0]), "sep": "hyphens" if ops[1] == "-" else "underscores"},
    answer=lambda ops: ops[1].join(ops[0]),
    prompts=("Join these words with {sep}: {lst}", "Combine {lst} into one string separated by {sep}.",
             "Connect the words {lst} using {sep}."),
    subject="{lst}",
    kind=lambda ops: ops[1],
)

# ---------------------------------------------------------------------------------------------- lists


def _numbers(rng: random.Random, lo: int = 3, hi: int = 5, top: int = 99) -> tuple[int, ...]:
    return tuple(rng.sample(range(1, top + 1), rng.randint(lo, hi)))


def _csv(items) -> str:
    return ", ".join(str(x) for x in items)


SORT_ASC = Task(
    name="sort_asc", category="list", draw=lambda rng: (_numbers(rng),),
    fields=lambda ops: {"lst": _csv(ops[0])}, answer=lambda ops: _csv(sorted(ops[0])),
    prompts=("Sort these numbers ascending: {lst}", "Arrange {lst} from smallest to largest.",
             "Put these numbers in increasing order: {lst}"),
    subject="{lst}",
)

SORT_DESC = Task(
    name="sort_desc", category="list", draw=lambda rng: (_numbers(rng),),
    fields=lambda ops: {"lst": _csv(ops[0])}, answer=lambda ops: _csv(sorted(ops[0], reverse=True)),
    prompts=("Sort these numbers descending: {lst}", "Arrange {lst} from largest to smallest.",
             "Order these numbers from highest to lowest: {lst}"),
    subject="{lst}",
)

EXTREME = Task(
    name="extreme", category="list", draw=lambda rng: (_numbers(rng, 4, 6), rng.choice(("largest", "smallest"))),
    fields=lambda ops: {"lst": _csv(ops[0]), "which": ops[1]},
    answer=lambda ops: str(max(ops[0]) if ops[1] == "largest" else min(ops[0])),
    prompts=("What is the {which} number in this list: {lst}?", "Find the {which} of these numbers: {lst}",
             "Which number is the {which}: {lst}?"),
    subject="{lst}",
    kind=lambda ops: ops[1],
)

SUM = Task(
    name="sum", category="list", draw=lambda rng: (_numbers(rng, 3, 4, top=40),),
    fields=lambda ops: {"lst": _csv(ops[0])}, answer=lambda ops: str(sum(ops[0])),
    prompts=("What is the sum of {lst}?", "Add up these numbers: {lst}", "Find the total of {lst}."),
    subject="{lst}",
)

SORT_WORDS = Task(
    name="sort_words", category="list", draw=lambda rng: (tuple(rng.sample(WORDS, rng.randint(3, 5))),),
    fields=lambda ops: {"lst": ", ".join(ops[0])}, answer=lambda ops: ", ".join(sorted(ops[0])),
    prompts=("Sort these words alphabetically: {lst}", "Put these words in alphabetical order: {lst}",
             "Alphabetize this list: {lst}"),
    subject="{lst}",
)

REVERSE_LIST = Task(
    name="reverse_list", category="list", draw=lambda rng: (_numbers(rng, 3, 5),),
    fields=lambda ops: {"lst": _csv(ops[0])}, answer=lambda ops: _csv(reversed(ops[0])),
    prompts=("Reverse the order of this list: {lst}", "Write this list backwards: {lst}",
             "List these numbers in reverse order: {lst}"),
    subject="{lst}",
)

# ---------------------------------------------------------------------------------------------- dates

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def _date(rng: random.Random, first: int = 1990, last: int = 2030) -> dt.date:
    start, end = dt.date(first, 1, 1).toordinal(), dt.date(last, 12, 31).toordinal()
    return dt.date.fromordinal(rng.randint(start, end))


def _weekday_fields(ops: Ops) -> dict[str, str]:
    (day,) = ops
    return {"d": day.isoformat(), "was": "was" if day.year < 2024 else "is"}


WEEKDAY = Task(
    name="weekday", category="date", draw=lambda rng: (_date(rng),), fields=_weekday_fields,
    answer=lambda ops: WEEKDAYS[ops[0].weekday()],
    prompts=("What day of the week {was} {d}?", "Which day of the week does {d} fall on?",
             "On what weekday {was} {d}?"),
    subject="{d}",
)

ADD_DAYS = Task(
    name="add_days", category="date", draw=lambda rng: (_date(rng, 2015, 2030), rng.randint(1, 30)),
    fields=lambda ops: {"d": ops[0].isoformat(), "n": str(ops[1]), "days": "day" if ops[1] == 1 else "days"},
    answer=lambda ops: (ops[0] + dt.timedelta(days=ops[1])).isoformat(),
    prompts=("What date is {n} {days} after {d}?", "Add {n} {days} to {d}.", "Which date comes {n} {days} after {d}?"),
    subject="{n} {days} after {d}",
)

DAYS_IN_MONTH = Task(
    name="days_in_month", category="date", draw=lambda rng: (rng.randint(1, 12), rng.randint(1990, 2030)),
    fields=lambda ops: {"m": MONTHS[ops[0] - 1], "y": str(ops[1])},
    answer=lambda ops: str(calendar.monthrange(ops[1], ops[0])[1]),
    prompts=("How many days are in {m} {y}?", "How many days does {m} {y} have?", "How long is {m} {y} in days?"),
    subject="{m} {y}",
)

def _draw_year(rng: random.Random) -> Ops:
    # Half the draws are multiples of 4, so "Yes" is not rare; 1900, 2000 and 2100 can come up too.
    return (4 * rng.randint(475, 525) if rng.random() < 0.5 else rng.randint(1890, 2110),)


LEAP_YEAR = Task(
    name="leap_year", category="date", draw=_draw_year,
    fields=lambda ops: {"y": str(ops[0])}, answer=lambda ops: "Yes" if calendar.isleap(ops[0]) else "No",
    prompts=("Is {y} a leap year?", "Is {y} a leap year? Answer yes or no.", "Does the year {y} have a February 29?"),
    subject="{y}",
)

MONTH_AFTER = Task(
    name="month_after", category="date", draw=lambda rng: (rng.randint(1, 12), rng.randint(1, 11)),
    fields=lambda ops: {"m": MONTHS[ops[0] - 1], "n": str(ops[1]), "months": "month" if ops[1] == 1 else "months"},
    answer=lambda ops: MONTHS[(ops[0] - 1 + ops[1]) % 12],
    prompts=("What month comes {n} {months} after {m}?", "Which month is {n} {months} after {m}?",
             "If it is {m} now, what month will it be in {n} {months}?"),
    subject="{n} {months} after {m}",
)


def _draw_days_between(rng: random.Random) -> Ops:
    start = _date(rng, 2000, 2030)
    return start, start + dt.timedelta(days=rng.randint(2, 60))


DAYS_BETWEEN = Task(
    name="days_between", category="date", draw=_draw_days_between,
    fields=lambda ops: {"a": ops[0].isoformat(), "b": ops[1].isoformat()},
    answer=lambda ops: str((ops[1] - ops[0]).days),
    prompts=("How many days is it from {a} to {b}?", "How many days after {a} is {b}?",
             "How many days separate {a} and {b}?"),
    subject="{a} to {b}",
)

# ---------------------------------------------------------------------------------------------- the mix

# task: rows in (train, valid, eval). About 42 train rows per category, so that verifiable rows are ~60% of
# train next to the hand-written ones; 8 eval questions per category.
PLAN: tuple[tuple[Task, int, int, int], ...] = (
    (ADD_SUB, 30, 3, 5), (MULTIPLY, 13, 2, 3),
    (CONVERT, 42, 5, 8),
    (REVERSE, 11, 1, 2), (LENGTH, 8, 1, 2), (COUNT_LETTER, 9, 1, 2), (NTH_LETTER, 7, 1, 1), (JOIN, 7, 1, 1),
    (SORT_ASC, 9, 1, 2), (SORT_DESC, 7, 1, 1), (EXTREME, 8, 1, 1), (SUM, 8, 1, 2), (SORT_WORDS, 6, 1, 1),
    (REVERSE_LIST, 5, 0, 1),
    (WEEKDAY, 9, 1, 2), (ADD_DAYS, 9, 1, 2), (DAYS_IN_MONTH, 7, 1, 1), (LEAP_YEAR, 6, 1, 1), (MONTH_AFTER, 6, 0, 1),
    (DAYS_BETWEEN, 5, 0, 1),
)


class Sampler:
    """Draws instances of tasks, each (task, operands) at most once across every split."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[tuple[str, Hashable]] = set()

    def draw(self, task: Task, like: Ops | None = None) -> Ops:
        for _ in range(10_000):
            ops = task.draw(self.rng)
            if like is not None and task.kind(ops) != task.kind(like):
                continue
            key = (task.name, task.key(ops))
            if key not in self.used:
                self.used.add(key)
                return ops
        raise RuntimeError(f"ran out of fresh instances for {task.name}")

    def question(self, task: Task, ops: Ops) -> str:
        return self.rng.choice(task.prompts).format(**task.fields(ops))

    def follow_up(self, task: Task, ops: Ops) -> tuple[str, str]:
        """A second user turn that only makes sense in context, and its answer."""
        if task is ADD_SUB or task is MULTIPLY:
            # Chain on the previous result: "Now subtract 7 from that."
            result = int(task.answer(ops))
            if result > 0 and self.rng.random() < 0.5:
                n = self.rng.randint(1, min(result, 50))  # stay non-negative
                return f"Now subtract {n} from that.", str(result - n)
            n = self.rng.randint(1, 50)
            return f"Now add {n} to that.", str(result + n)
        new = self.draw(task, like=ops)
        text = self.rng.choice(FOLLOW_UPS).format(subject=task.subject.format(**task.fields(new)))
        return text, task.answer(new)


def verifiable_rows(sampler: Sampler, split: int) -> list[dict]:
    """Chat rows for train (split 0) or valid (split 1)."""
    rows = []
    for task, *counts in PLAN:
        for _ in range(counts[split]):
            ops = sampler.draw(task)
            messages = [{"role": "user", "content": sampler.question(task, ops)},
                        {"role": "assistant", "content": task.answer(ops)}]
            if len(rows) % MULTI_TURN_EVERY == 1:
                user, assistant = sampler.follow_up(task, ops)
                messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
            if len(rows) % SYSTEM_EVERY == 7:
                system = SYSTEM_PROMPTS[len(rows) // SYSTEM_EVERY % len(SYSTEM_PROMPTS)]
                messages.insert(0, {"role": "system", "content": system})
            rows.append({"messages": messages})
    return rows


def eval_rows(sampler: Sampler) -> list[dict]:
    rows = []
    for task, _, _, n in PLAN:
        for _ in range(n):
            ops = sampler.draw(task)
            rows.append({"question": sampler.question(task, ops), "reference": task.answer(ops),
                         "category": task.category})
    rows += [{"question": q, "category": "open"} for q in OPEN_QUESTIONS]
    return rows


def build() -> dict[str, list[dict]]:
    rng = random.Random(SEED)
    sampler = Sampler(rng)
    # Eval first, so its instances are drawn before anything else could take them.
    evaluation = eval_rows(sampler)
    valid = verifiable_rows(sampler, 1)
    train = verifiable_rows(sampler, 0)
    for i, messages in enumerate(CONVERSATIONS):
        (valid if i % VALID_EVERY == VALID_EVERY // 2 else train).append({"messages": messages})
    for rows in (train, valid, evaluation):
        rng.shuffle(rows)  # interleave task types and hand-written rows
    return {"train": train, "valid": valid, "eval": evaluation}


def write(out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, rows in build().items():
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (out / f"{split}.jsonl").write_bytes(text.encode("utf-8"))
        counts[split] = len(rows)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the jsonl files into")
    args = parser.parse_args(argv)
    for split, n in write(args.out).items():
        print(f"{args.out / f'{split}.jsonl'}: {n} rows")


if __name__ == "__main__":
    main()
