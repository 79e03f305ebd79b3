"""Multi-step problems with worked traces, from a deterministic seeded generator, for ``experiment reasoning``.

    problems = generate(ReasoningSpec(seed=0))                  # train and held-out, disjoint (checked)
    problems.train[0]   # Problem(kind="arithmetic", question="What is (7 + 5) * 3?", trace="7 + 5 = 12. ...",
                        #         answer="36")
    write_rows(problems.train, "answer.jsonl", with_trace=False)   # the final answer alone
    write_rows(problems.train, "trace.jsonl", with_trace=True)     # the trace in the reasoning field, then it
    strip_trace("<think>\\n7 + 5 = 12. 12 * 3 = 36.\\n</think>\\n\\n36")   # ("36", "trace")

Three kinds, each two steps: ``arithmetic`` ((a + b) * c, a * b - c, ...), ``units`` (a conversion through an
intermediate unit: hours -> minutes -> seconds) and ``word`` (short word problems: boxes of apples, change from
a bill). The traces are written by this generator, not by a model: each step states the operation and its
result, so a trace is right by construction. ``answer_budget`` turns the longest trace into a generation limit it
always fits in: counted in the student's own tokens, or (no tokenizer) in bytes, since every text is ASCII and a
tokenizer needs at most one token per byte of it.

The held-out problems are drawn first and no training problem asks the same question (``generate`` checks it).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from mlxsft.errors import RunError

KINDS = ("arithmetic", "units", "word")


@dataclass(frozen=True)
class Problem:
    kind: str
    question: str
    trace: str  # the worked steps, without the <think> tags
    answer: str  # the final answer: an integer, as text


@dataclass
class ReasoningSpec:
    seed: int = 0
    train: int = 600
    held_out: int = 48


@dataclass
class Problems:
    train: list[Problem] = field(default_factory=list)
    held_out: list[Problem] = field(default_factory=list)


# ----------------------------------------------------------------------------- the three kinds
def _arithmetic(rng: random.Random) -> Problem:
    a, b, c = rng.randint(2, 19), rng.randint(2, 19), rng.randint(2, 9)
    form = rng.randrange(4)
    if form == 0:
        s = a + b
        return Problem("arithmetic", f"What is ({a} + {b}) * {c}?", f"{a} + {b} = {s}. {s} * {c} = {s * c}.",
                       str(s * c))
    if form == 1:
        a, b = max(a, b) + 1, min(a, b)  # a - b stays positive
        d = a - b
        return Problem("arithmetic", f"What is ({a} - {b}) * {c}?", f"{a} - {b} = {d}. {d} * {c} = {d * c}.",
                       str(d * c))
    m = a * b
    if form == 2:
        return Problem("arithmetic", f"What is {a} * {b} + {c}?", f"{a} * {b} = {m}. {m} + {c} = {m + c}.",
                       str(m + c))
    return Problem("arithmetic", f"What is {a} * {b} - {c}?", f"{a} * {b} = {m}. {m} - {c} = {m - c}.", str(m - c))


UNIT_CHAINS = (  # (from, intermediate, to, from -> intermediate, intermediate -> to)
    ("hours", "minutes", "seconds", 60, 60),
    ("days", "hours", "minutes", 24, 60),
    ("weeks", "days", "hours", 7, 24),
    ("kilometers", "meters", "centimeters", 1000, 100),
    ("kilograms", "grams", "milligrams", 1000, 1000),
    ("meters", "centimeters", "millimeters", 100, 10),
)


def _units(rng: random.Random) -> Problem:
    src, mid, dst, f1, f2 = rng.choice(UNIT_CHAINS)
    n = rng.randint(2, 30)
    m = n * f1
    question = f"How many {dst} are in {n} {src}?" if rng.random() < 0.5 else f"Convert {n} {src} to {dst}."
    return Problem("units", question,
                   f"{n} {src} = {n} * {f1} = {m} {mid}. {m} {mid} = {m} * {f2} = {m * f2} {dst}.", str(m * f2))


NAMES = ("Sam", "Mia", "Leo", "Ana", "Tom", "Zoe", "Raj", "Eva")
THINGS = ("apples", "pencils", "cookies", "marbles", "stickers")


def _word(rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    form = rng.randrange(3)
    if form == 0:
        thing = rng.choice(THINGS)
        a, b = rng.randint(2, 9), rng.randint(3, 12)
        t = a * b
        c = rng.randint(1, t - 1)
        return Problem("word", f"{name} has {a} boxes with {b} {thing} in each and gives away {c} {thing}. How "
                               f"many {thing} does {name} have left?", f"{a} * {b} = {t} {thing}. {t} - {c} = "
                                                                       f"{t - c}.", str(t - c))
    if form == 1:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        t = a * b
        bill = 50 if t < 50 else 100
        return Problem("word", f"{name} buys {a} notebooks at {b} dollars each and pays with a {bill} dollar "
                               f"bill. How many dollars of change does {name} get?",
                       f"{a} * {b} = {t} dollars. {bill} - {t} = {bill - t}.", str(bill - t))
    a, b, c = rng.randint(20, 90), rng.randint(2, 6), rng.randint(5, 60)
    t = a * b
    return Problem("word", f"A train travels at {a} kilometers per hour for {b} hours, then {c} more kilometers. "
                           f"How many kilometers does it travel in all?", f"{a} * {b} = {t}. {t} + {c} = {t + c}.",
                   str(t + c))


GENERATORS: dict[str, Callable[[random.Random], Problem]] = {"arithmetic": _arithmetic, "units": _units,
                                                               "word": _word}


# ----------------------------------------------------------------------------- train and held-out
MAX_MISSES = 2000
def _draw(rng: random.Random, n: int, taken: set[str]) -> list[Problem]:
    """``n`` problems with questions not in ``taken`` (added to it), the kinds in turn."""
    out: list[Problem] = []
    misses = 0  # draws in a row that only repeated a question: the kind has (nearly) run out
    while len(out) < n:
        p = GENERATORS[KINDS[len(out) % len(KINDS)]](rng)
        if p.question in taken:
            misses += 1
            if misses > MAX_MISSES:
                raise RunError(f"the reasoning generator ran out of distinct {p.kind} problems after {len(out)} "
                               f"of {n}", hint="ask for fewer training or held-out problems")
            continue
        misses = 0
        taken.add(p.question)
        out.append(p)
    return out


def generate(spec: ReasoningSpec) -> Problems:
    """The held-out problems first, then training problems that ask none of their questions."""
    rng = random.Random(spec.seed)
    taken: set[str] = set()
    held_out = _draw(rng, spec.held_out, taken)
    train = _draw(rng, spec.train, taken)
    check_disjoint(train, held_out)
    return Problems(train=train, held_out=held_out)


def check_disjoint(train: list[Problem], held_out: list[Problem]) -> None:
    shared = {p.question for p in train} & {p.question for p in held_out}
    if shared:
        raise RunError(f"{len(shared)} held-out problems are also training problems, e.g. {sorted(shared)[0]!r}")


# ----------------------------------------------------------------------------- files
def training_row(p: Problem, with_trace: bool) -> dict:
    """A chat row: the answer alone, or the trace in the assistant's ``reasoning`` field (the data layer gives it
    to the template's reasoning channel, or writes it inline as ``<think>...</think>`` before the answer)."""
    assistant = {"role": "assistant", "content": p.answer}
    if with_trace:
        assistant["reasoning"] = p.trace
    return {"messages": [{"role": "user", "content": p.question}, assistant], "category": p.kind}


def write_rows(problems: list[Problem], path: Path, with_trace: bool) -> Path:
    from mlxsft.files import atomic_write_text

    atomic_write_text(Path(path), "".join(json.dumps(training_row(p, with_trace)) + "\n" for p in problems))
    return Path(path)


def write_questions(problems: list[Problem], path: Path) -> Path:
    """The held-out problems as an eval questions file (question, reference, category)."""
    from mlxsft.files import atomic_write_text

    atomic_write_text(Path(path), "".join(json.dumps({"question": p.question, "reference": p.answer,
                                                      "category": p.kind}) + "\n" for p in problems))
    return Path(path)


def problems_to_dicts(problems: list[Problem]) -> list[dict]:
    return [asdict(p) for p in problems]


# ----------------------------------------------------------------------------- scoring
_OPEN, _CLOSE = "<think>", "</think>"
TRACE_MARGIN = 16  # tokens past the inline trace and answer: the end of turn and a template's own spacing


def answer_budget(problems: list[Problem], count_tokens: Optional[Callable[[str], int]] = None) -> int:
    """New tokens that let every trace and its answer finish: the longest inline form (``<think>\\n...\\n</think>
    \\n\\n`` + answer) in ``count_tokens``' tokens (the student's tokenizer), else in bytes (ASCII: at most one
    token per byte), plus a margin. In tokens the limit is ~2/3 of the bytes' (88 against 133 for SmolLM2 on the
    default problems), a third less of the time an answer that never ends costs the scoring."""
    count = count_tokens or (lambda text: len(text.encode()))
    return max(count(f"{_OPEN}\n{p.trace}\n{_CLOSE}\n\n{p.answer}") for p in problems) + TRACE_MARGIN


def strip_trace(text: str) -> tuple[Optional[str], str]:
    """(the scored answer, how it was found): what follows ``</think>`` ("trace"); the whole text when it has
    no trace ("no_trace"); None when the answer was cut off inside the trace ("cut_off": it counts as wrong)."""
    close = text.rfind(_CLOSE)
    if close >= 0:
        return text[close + len(_CLOSE):].strip(), "trace"
    if _OPEN in text:
        return None, "cut_off"
    return text.strip(), "no_trace"



def trace_steps_right(trace: str) -> bool:
    """Every ``x op y = z`` in a trace is right (for checking traces the model writes)."""
    for a, op, b, z in re.findall(r"(-?\d+) ([-+*]) (-?\d+) = (-?\d+)", trace):
        x, y = int(a), int(b)
        if {"+": x + y, "-": x - y, "*": x * y}[op] != int(z):
            return False
    return True
