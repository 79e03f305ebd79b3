"""The mixed-quality pool of ``mlxsft experiment curation``: the bundled data plus freshly generated rows, with
realistic defects planted at known rates and labelled per row.

    pool = build_pool(PoolSpec(seed=0))          # deterministic: the same seed gives the same bytes
    pool.write(Path("pool.jsonl"))               # what curation and training read (no labels in it)
    pool.labels["pool-00042"]                    # "clean" | "wrong" | "truncated" | ... (DEFECTS)

Where the rows come from: the bundled ``train.jsonl`` (clean, as shipped) and new instances of its verifiable
tasks (``mlxsft/data/bundled/tasks.py``), drawn by the same sampler that drew the bundled splits, after them: so
no pool row is an instance of an eval question (nor of a bundled row), and the held-out questions stay held out
(``build_pool`` also checks that no pool prompt is an eval question). Every generated row carries the task's
canonical answer as ``reference`` (what a verifier knows), whatever its answer says, unless it is one of the
``1 - reference_rate`` drawn to have none (no verifier for it).

The defects, each a fresh instance unless it copies another row:
  ``wrong``         a plausible wrong answer: another instance's answer of the same task
  ``truncated``     the answer cut off part-way (long answers only: e-mails, JSON, lists, dates, sentences)
  ``wrong_format``  the right answer in the wrong form: wrapped in chat ("The answer is 1987."), or JSON / list /
                    date written another way
  ``rambling``      the answer, then text that never stops: a looping sign-off, or unrelated sentences
  ``exact_dup``     a copy of an earlier row
  ``near_dup``      an earlier row with a few words added to its question
  ``paraphrase``    one of many rewordings of a few prompts (low diversity); the first of each group is clean
Copies are labelled by file order: of two identical rows the later one is the ``exact_dup``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mlxsft.data.bundled.tasks import TASKS, Sampler, Task

DEFECTS = ("wrong", "truncated", "wrong_format", "rambling", "exact_dup", "near_dup", "paraphrase")
LABELS = ("clean", *DEFECTS)
# Share of the pool's rows per defect; the rest is clean. About half the pool is defective: a scraped or
# distilled set can be that bad, and at a few minutes of training a small share would not show.
DEFAULT_RATES = {"wrong": 0.08, "truncated": 0.06, "wrong_format": 0.08, "rambling": 0.06, "exact_dup": 0.06,
                 "near_dup": 0.06, "paraphrase": 0.10}
PARAPHRASE_GROUPS = 6  # "many paraphrases of a few prompts"
TRUNCATABLE = ("extract_email", "replace", "to_json", "to_list", "iso_date")  # answers long enough to cut

WRAPPERS = ("The answer is {a}.", "Sure! Here is the answer: {a}", "Answer: {a}", "{a}. Let me know if you need "
            "anything else!", "Of course. {a}", "Here you go: {a}")
FILLER_LOOP = "I hope this helps! Let me know if you have any other questions."
CHATTER = ("This is a common question.", "Many people ask about this.", "There are several ways to look at it.",
           "It depends on the context, of course.", "In general, it is best to double-check.",
           "Some sources say otherwise.", "Let me explain a little more.", "First, consider the details.",
           "Then think about what was asked.", "That is usually the answer people expect.",
           "On the other hand, there may be exceptions.", "It is always good to be careful.",
           "Language can be tricky sometimes.", "You might also want to look it up.",
           "Other examples work the same way.", "I will go into more detail below.",
           "To summarise what I said above:", "Another thing worth mentioning is the format.",
           "People often get this wrong.", "Thanks for asking such a good question.")
NEAR_EDITS = (("Hi! ", ""), ("Quick question: ", ""), ("", " Thanks!"), ("", " Please answer briefly."),
              ("Please help: ", ""), ("", " Thank you."))
PARAPHRASE_PREFIXES = ("", "Quick question: ", "Hey, ", "Please help: ", "I need this: ", "Can you do this? ",
                       "Task: ")
PARAPHRASE_SUFFIXES = ("", " Thanks!", " Be brief.")


@dataclass
class PoolSpec:
    seed: int = 0
    size: Optional[int] = None  # rows in all; default: ``multiple`` x the bundled train rows
    multiple: int = 4
    rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    # Share of generated rows that carry their reference: not every row of a real pool has a verifier, and a
    # defect without one can only be caught by the quality checks, dedup and selection.
    reference_rate: float = 0.8

    def counts(self, size: int) -> dict[str, int]:
        """Planted rows per defect (the rest is clean): round(rate x size), a paraphrase count a multiple of
        the groups."""
        out = {d: round(self.rates.get(d, 0.0) * size) for d in DEFECTS}
        out["paraphrase"] -= out["paraphrase"] % PARAPHRASE_GROUPS
        return out


@dataclass
class Pool:
    rows: list[dict]  # {"id", "messages", "reference"?}, in file order
    labels: dict[str, str]  # row id -> one of LABELS
    spec: PoolSpec

    def write(self, path: Path) -> Path:
        from mlxsft.files import atomic_write_text

        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows))
        return path

    def label_counts(self) -> dict[str, int]:
        return {label: sum(v == label for v in self.labels.values()) for label in LABELS}


# The pieces a pool is made of, public: ``pool_from_data.py`` plants the same defects in a user's own rows.
@dataclass
class Row:
    """One pool row before it is written: its chat, the reference answer (if any) and its planted label."""

    messages: list[dict]
    reference: Optional[str]
    label: str
    group: Optional[int] = None  # rows of one group copy each other: file order decides which is the copy
    copy_label: str = "near_dup"  # what a later non-identical member of its group is


def answer_of(messages: list[dict]) -> str:
    """The assistant's answer: the last message."""
    return messages[-1]["content"]


def with_answer(messages: list[dict], answer: str) -> list[dict]:
    """The chat with its last message's answer replaced."""
    return [*messages[:-1], {"role": "assistant", "content": answer}]


def with_question(messages: list[dict], prefix: str, suffix: str) -> list[dict]:
    """The chat with ``prefix`` and ``suffix`` around its last user message (paraphrases, near duplicates)."""
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    out = [dict(m) for m in messages]
    out[last_user]["content"] = prefix + out[last_user]["content"] + suffix
    return out


class _Fresh:
    """New task instances, round-robin over the tasks, skipping a task once it has no fresh instance left."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.exhausted: set[str] = set()
        self.turn = 0

    def draw(self, tasks: tuple[Task, ...] = TASKS) -> tuple[Task, tuple, str]:
        for _ in range(len(tasks)):
            task = tasks[self.turn % len(tasks)]
            self.turn += 1
            if task.name in self.exhausted:
                continue
            try:
                ops, question = self.sampler.draw(task)
            except RuntimeError:
                self.exhausted.add(task.name)
                continue
            return task, ops, question
        raise RuntimeError("the task generators ran out of fresh instances for the pool")

    def row(self, tasks: tuple[Task, ...] = TASKS) -> tuple[Task, tuple, list[dict]]:
        task, ops, question = self.draw(tasks)
        return task, ops, [{"role": "user", "content": question}, {"role": "assistant", "content": task.answer(ops)}]


def _wrong(task: Task, ops: tuple, rng: random.Random) -> str:
    right = task.answer(ops)
    for _ in range(1000):
        other = task.answer(task.draw(rng))
        if other.strip().lower() != right.strip().lower():
            return other
    raise RuntimeError(f"{task.name}: no wrong answer found")


def truncated(answer: str, rng: random.Random) -> str:
    """``answer`` cut 30-70% of the way through (by words where it has three or more)."""
    words = answer.split(" ")
    if len(words) >= 3:
        return " ".join(words[:max(1, int(len(words) * rng.uniform(0.3, 0.7)))])
    return answer[:max(1, int(len(answer) * rng.uniform(0.3, 0.7)))]


def _wrong_format(task: Task, answer: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        if task.name == "to_json":
            d = json.loads(answer)
            return f"name: {d['name']}, city: {d['city']}"
        if task.name == "to_list":
            return "\n".join(f"- {item}" for item in answer.split(", "))
        if task.name == "iso_date":
            y, m, d = answer.split("-")
            return f"{m}/{d}/{y}"
    return rng.choice(WRAPPERS).format(a=answer)


def rambling(answer: str, rng: random.Random) -> str:
    """``answer`` followed by text that never ends its turn: a loop, or unrelated sentences."""
    if rng.random() < 0.5:  # a loop: the kind of text a model that never stops writes
        return answer + "\n\n" + " ".join([FILLER_LOOP] * rng.randint(10, 16))
    sentences = rng.sample(CHATTER, k=rng.randint(14, len(CHATTER)))  # no loop: a repetition check misses it
    return answer + " " + " ".join(sentences)


def _paraphrases(task: Task, ops: tuple, n: int, rng: random.Random) -> list[list[dict]]:
    fields = task.fields(ops)
    variants = [p + prompt.format(**fields) + s for prompt in task.prompts for p in PARAPHRASE_PREFIXES
                for s in PARAPHRASE_SUFFIXES]
    chosen = rng.sample(variants, n)
    return [[{"role": "user", "content": q}, {"role": "assistant", "content": task.answer(ops)}] for q in chosen]


def bundled_rows() -> list[list[dict]]:
    from mlxsft.data.bundled_paths import bundled_path

    with open(bundled_path("train"), encoding="utf-8") as f:
        return [json.loads(line)["messages"] for line in f if line.strip()]


def eval_questions() -> set[str]:
    from mlxsft.data.bundled_paths import bundled_path

    with open(bundled_path("eval"), encoding="utf-8") as f:
        return {json.loads(line)["question"] for line in f if line.strip()}


def build_pool(spec: PoolSpec) -> Pool:
    """The pool for ``spec``: byte for byte the same for the same spec."""
    from mlxsft.data.bundled.make_dataset import SEED, draw_task_rows

    sampler, _, _, _ = draw_task_rows(random.Random(SEED))  # it knows every bundled instance: ours are new
    rng = random.Random(spec.seed)
    sampler.rng = random.Random(rng.getrandbits(64))
    fresh = _Fresh(sampler)
    bundled = bundled_rows()
    size = spec.size or spec.multiple * len(bundled)
    counts = spec.counts(size)
    n_clean = size - sum(counts.values())
    n_fresh_clean = n_clean - len(bundled) - PARAPHRASE_GROUPS  # each paraphrase group's first row is clean
    if n_fresh_clean < 0:
        from mlxsft.errors import ConfigError

        raise ConfigError(f"a pool of {size} rows with these defect rates has room for fewer clean rows than the "
                          f"{len(bundled)} bundled ones", hint="make the pool larger (--pool-multiple 3 or more)")

    rows: list[Row] = [Row(m, None, "clean") for m in bundled]
    for _ in range(n_fresh_clean):
        task, ops, messages = fresh.row()
        rows.append(Row(messages, task.answer(ops), "clean"))
    clean = list(rows)
    truncatable = tuple(t for t in TASKS if t.name in TRUNCATABLE)
    for defect, make, tasks in (
            ("wrong", lambda t, o, a: _wrong(t, o, rng), TASKS),
            ("truncated", lambda t, o, a: truncated(a, rng), truncatable),
            ("wrong_format", lambda t, o, a: _wrong_format(t, a, rng), TASKS),
            ("rambling", lambda t, o, a: rambling(a, rng), TASKS)):
        for _ in range(counts[defect]):
            task, ops, messages = fresh.row(tasks)
            rows.append(Row(with_answer(messages, make(task, ops, answer_of(messages))), task.answer(ops), defect))
    groups = iter(range(1, size + 1))
    for source in rng.sample(clean, counts["exact_dup"]):
        source.group = source.group or next(groups)
        rows.append(Row(source.messages, source.reference, "exact_dup", source.group))
    for source in rng.sample(clean, counts["near_dup"]):
        source.group = source.group or next(groups)
        rows.append(Row(with_question(source.messages, *rng.choice(NEAR_EDITS)), source.reference, "near_dup",
                         source.group))
    per_group = counts["paraphrase"] // PARAPHRASE_GROUPS
    for _ in range(PARAPHRASE_GROUPS):
        task, ops, _ = fresh.draw()
        g = next(groups)
        for i, messages in enumerate(_paraphrases(task, ops, per_group + 1, rng)):
            rows.append(Row(messages, task.answer(ops), "clean" if i == 0 else "paraphrase", g, "paraphrase"))
    rng.shuffle(rows)
    relabel_copies(rows)

    held_out = eval_questions()
    leaked = [m["content"] for r in rows for m in r.messages if m["role"] == "user" and m["content"] in held_out]
    assert not leaked, f"eval questions in the pool: {leaked[:3]}"
    return finish_pool(rows, spec, rng)


def finish_pool(rows: list[Row], spec: PoolSpec, rng: random.Random) -> Pool:
    """The pool's rows in their (shuffled, relabelled) order: ids ``pool-NNNNN``, each row's reference kept with
    probability ``spec.reference_rate`` (not every row of a real pool has a verifier), and the labels."""
    out, labels = [], {}
    for i, r in enumerate(rows):
        row_id = f"pool-{i:05d}"
        row: dict = {"id": row_id, "messages": r.messages}
        if r.reference is not None and rng.random() < spec.reference_rate:
            row["reference"] = r.reference
        out.append(row)
        labels[row_id] = r.label
    return Pool(rows=out, labels=labels, spec=spec)


def relabel_copies(rows: list[Row]) -> None:
    """In each group of copies, the row that comes first is the clean one; a later row identical to an earlier
    one is an ``exact_dup``, any other later row a ``paraphrase`` or ``near_dup`` by its group's kind."""
    seen: dict[int, list[Row]] = {}
    for r in rows:
        if r.group is None:
            continue
        earlier = seen.setdefault(r.group, [])
        if not earlier:
            r.label = "clean"
        elif any(e.messages == r.messages for e in earlier):
            r.label = "exact_dup"
        else:
            r.label = r.copy_label
        earlier.append(r)
