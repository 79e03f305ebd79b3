"""Generate the bundled dataset: ``train.jsonl``, ``valid.jsonl``, ``eval.jsonl`` and ``general.jsonl``.

Run it from the repository root; it rewrites the files byte for byte (fixed seed, stdlib only)::

    python -m mlxsft.data.bundled.make_dataset            # into this folder
    python -m mlxsft.data.bundled.make_dataset --out DIR  # somewhere else (the tests compare the bytes)

Two kinds of rows are mixed:

* verifiable tasks (``tasks.py``: extraction, classification, rewriting, formatting, short facts) whose
  assistant turn is exactly the canonical answer and nothing else, so that exact match on ``eval.jsonl`` means
  something and a tuned model learns a crisp format and to stop right after it;
* short hand-written instruction-following and explanation conversations from ``handwritten.py``.

Every instance (task and operands, not just its wording) is used at most once across all splits, so an eval
question is never a rephrased train prompt. ``general.jsonl`` holds the forgetting score's general prompts.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from mlxsft.data.bundled.handwritten import CONVERSATIONS, GENERAL_PROMPTS, OPEN_QUESTIONS
from mlxsft.data.bundled.tasks import TASKS, Sampler, Task

SEED = 20241201
HERE = Path(__file__).resolve().parent

# Hand-written conversations whose every answer fits in SHORT_ANSWER characters: a small model learns the
# length it is shown, and the demo's budget (a few minutes on a 2-core CPU) pays per token.
SHORT_ANSWER = 200
# Every VALID_EVERY-th of them goes to valid.jsonl; the rest to train.jsonl.
VALID_EVERY = 9
# Every MULTI_TURN_EVERY-th verifiable train/valid row gets a second question of another task type.
MULTI_TURN_EVERY = 6
# Every SYSTEM_EVERY-th verifiable train/valid row carries a system instruction.
SYSTEM_EVERY = 16
SYSTEM_PROMPTS = (
    "You are a concise assistant. Reply with only the answer.",
    "Answer with the result only, no explanation.",
    "You are a precise text tool. Give just the final answer.",
)
# Instances per task in (train, valid, eval): 3 x 16 = 48 held-out verifiable questions.
TRAIN_PER_TASK, VALID_PER_TASK, EVAL_PER_TASK = 16, 1, 3
# The open questions asked in the before/after table (read, not scored).
OPEN_IN_EVAL = 12


def exchange(sampler: Sampler, task: Task) -> list[dict]:
    ops, question = sampler.draw(task)
    return [{"role": "user", "content": question}, {"role": "assistant", "content": task.answer(ops)}]


def verifiable_rows(sampler: Sampler, per_task: int) -> list[dict]:
    """Chat rows for train or valid: ``per_task`` instances of every task."""
    rows = []
    for t, task in enumerate(TASKS):
        for _ in range(per_task):
            messages = exchange(sampler, task)
            if len(rows) % MULTI_TURN_EVERY == 1:
                messages += exchange(sampler, TASKS[(t + 1 + len(rows)) % len(TASKS)])
            if len(rows) % SYSTEM_EVERY == 7:
                system = SYSTEM_PROMPTS[len(rows) // SYSTEM_EVERY % len(SYSTEM_PROMPTS)]
                messages.insert(0, {"role": "system", "content": system})
            rows.append({"messages": messages})
    return rows


def eval_rows(sampler: Sampler) -> list[dict]:
    rows = []
    for task in TASKS:
        for _ in range(EVAL_PER_TASK):
            ops, question = sampler.draw(task)
            rows.append({"question": question, "reference": task.answer(ops),
                         "category": task.category})
    rows += [{"question": q, "category": "open"} for q in OPEN_QUESTIONS[:OPEN_IN_EVAL]]
    return rows


def short_conversations() -> list[list[dict]]:
    return [c for c in CONVERSATIONS if all(len(m["content"]) <= SHORT_ANSWER for m in c if m["role"] == "assistant")]


def draw_task_rows(rng: random.Random) -> tuple[Sampler, list[dict], list[dict], list[dict]]:
    """The eval, valid and train task rows in draw order, and the sampler that drew them: it remembers every
    instance and question used, so what it draws next (``mlxsft.experiments.pool``) is none of them."""
    # No task question may be a hand-written, open or general prompt (e.g. "What is the capital of Japan?").
    asked = {m["content"] for c in CONVERSATIONS for m in c if m["role"] == "user"}
    sampler = Sampler(rng, taken=asked | set(OPEN_QUESTIONS) | set(GENERAL_PROMPTS))
    # Eval first, so its instances are drawn before anything else could take them.
    evaluation = eval_rows(sampler)
    valid = verifiable_rows(sampler, VALID_PER_TASK)
    train = verifiable_rows(sampler, TRAIN_PER_TASK)
    return sampler, evaluation, valid, train


def build() -> dict[str, list[dict]]:
    rng = random.Random(SEED)
    _, evaluation, valid, train = draw_task_rows(rng)
    for i, messages in enumerate(short_conversations()):
        (valid if i % VALID_EVERY == VALID_EVERY // 2 else train).append({"messages": messages})
    for rows in (train, valid, evaluation):
        rng.shuffle(rows)  # interleave task types and hand-written rows
    general = [{"question": q, "category": "general"} for q in GENERAL_PROMPTS]
    return {"train": train, "valid": valid, "eval": evaluation, "general": general}


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
