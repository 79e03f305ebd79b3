"""The curation experiment's mixed pool built from a user's own dataset (``--data``): their rows, clean, plus
defective variants of them planted at known rates and labelled, as ``pool.build_pool`` does for the bundled data.

    pool = pool_from_data(Path("mine.jsonl"), PoolSpec(seed=0))
    pool.labels["pool-00042"]                    # "clean" | "wrong" | "truncated" | ... (pool.DEFECTS)

The bundled pool draws fresh instances of its task generators; a user's dataset has no generator, so here every
row of the file is a clean row and every defect is a variant of one of them (the same defects, made the same
way where nothing task-specific is needed):
  ``wrong``         the row's question with another row's answer
  ``truncated``     the answer cut off part-way
  ``wrong_format``  the answer wrapped in chat ("The answer is ...", "Sure! Here is the answer: ...")
  ``rambling``      the answer, then a looping sign-off or unrelated sentences
  ``exact_dup``, ``near_dup``, ``paraphrase``  as in the bundled pool (copies and rewordings of the question;
                    at most 20 rewordings of each of the six paraphrased questions)
So the pool holds ``len(rows) / (1 - sum of the rates)`` rows (twice the file at the default rates, about half
of them defective). A row's reference (what a verifier knows: its ``reference``/``answer`` field, else its own
clean answer) is carried by the clean row and all its variants, with probability ``spec.reference_rate``.
Rows must end in an assistant turn (the answer the defects change); the held-out questions must come from
``--questions``, since the bundled eval questions ask about the bundled tasks.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from mlxsft.errors import DataError
from mlxsft.experiments.pool import (DEFECTS, PARAPHRASE_GROUPS, PARAPHRASE_PREFIXES, PARAPHRASE_SUFFIXES,
                                     WRAPPERS, Pool, PoolSpec, answer_of, finish_pool, rambling, relabel_copies, Row,
                                     truncated, with_answer, with_question, NEAR_EDITS)

MIN_ROWS = 20  # fewer and "many paraphrases of a few prompts" or a random draw say nothing


def read_rows(path: Path) -> list[Row]:
    """The file's rows as clean pool rows; a row that does not end in an assistant answer is a one-line error."""
    from mlxsft.curate.jsonl import iter_jsonl
    from mlxsft.curate.prompts import to_prompt

    rows = []
    for line, row in iter_jsonl(path):
        p = to_prompt(row, str(path), line)  # checks the messages, finds the reference
        messages = row.get("messages")
        if not isinstance(messages, list) or messages[-1].get("role") != "assistant":
            raise DataError("expected 'messages' ending in an assistant turn (the answer the planted defects "
                            "change)", file=str(path), line=line, field="messages")
        if not str(messages[-1]["content"]).strip():
            raise DataError("empty assistant answer", file=str(path), line=line, field="messages")
        rows.append(Row([*p.messages, {"role": "assistant", "content": messages[-1]["content"]}],
                         p.reference, "clean"))
    if len(rows) < MIN_ROWS:
        raise DataError(f"{len(rows)} rows: the curation experiment needs at least {MIN_ROWS} to build a pool from",
                        file=str(path))
    return rows


def _other_answer(rows: list[Row], source: Row, rng: random.Random) -> str:
    right = answer_of(source.messages).strip().lower()
    for _ in range(100):
        other = answer_of(rng.choice(rows).messages)
        if other.strip().lower() != right:
            return other
    raise DataError("every row has the same answer: no wrong answer can be planted")


def _paraphrases(source: Row, n: int, rng: random.Random) -> list[list[dict]]:
    variants = [(p, s) for p in PARAPHRASE_PREFIXES for s in PARAPHRASE_SUFFIXES if p or s]
    return [with_question(source.messages, p, s) for p, s in rng.sample(variants, min(n, len(variants)))]


def pool_from_data(path: Path, spec: PoolSpec) -> Pool:
    """The pool for ``path`` and ``spec``: byte for byte the same for the same file and spec."""
    clean = read_rows(path)
    rng = random.Random(spec.seed)
    share = sum(spec.rates.get(d, 0.0) for d in DEFECTS)
    if not 0 <= share < 1:
        raise DataError(f"defect rates sum to {share:.2f}: no room for clean rows", file=str(path))
    counts = spec.counts(round(len(clean) / (1 - share)))
    rows = list(clean)
    for _ in range(counts["wrong"]):
        src = rng.choice(clean)
        rows.append(Row(with_answer(src.messages, _other_answer(clean, src, rng)), src.reference, "wrong"))
    # a one-word answer cannot be cut short: truncation picks among answers of 3+ words or 8+ characters
    long_enough = [r for r in clean if len(answer_of(r.messages).split()) >= 3 or len(answer_of(r.messages)) >= 8]
    for defect, make, sources in (("truncated", lambda a: truncated(a, rng), long_enough),
                                  ("wrong_format", lambda a: rng.choice(WRAPPERS).format(a=a), clean),
                                  ("rambling", lambda a: rambling(a, rng), clean)):
        for _ in range(counts[defect] if sources else 0):
            src = rng.choice(sources)
            rows.append(Row(with_answer(src.messages, make(answer_of(src.messages))), src.reference, defect))
    groups = itertools.count(1)  # ids of groups of copies
    for src in rng.sample(clean, min(counts["exact_dup"], len(clean))):
        src.group = src.group or next(groups)
        rows.append(Row(src.messages, src.reference, "exact_dup", src.group))
    for src in rng.sample(clean, min(counts["near_dup"], len(clean))):
        src.group = src.group or next(groups)
        rows.append(Row(with_question(src.messages, *rng.choice(NEAR_EDITS)), src.reference, "near_dup",
                         src.group))
    per_group = counts["paraphrase"] // PARAPHRASE_GROUPS
    for src in rng.sample([r for r in clean if r.group is None], PARAPHRASE_GROUPS) if per_group else []:
        src.group = next(groups)
        src.copy_label = "paraphrase"
        for messages in _paraphrases(src, per_group, rng):
            rows.append(Row(messages, src.reference, "paraphrase", src.group, "paraphrase"))
    rng.shuffle(rows)
    relabel_copies(rows)
    return finish_pool(rows, spec, rng)
