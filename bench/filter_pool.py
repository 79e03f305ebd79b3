"""A synthetic curation pool for ``bench.bench_filter``: chats asking what a standard-library function or class does,
answered with its docstring, with many exact and near duplicates and a few low-quality rows.

    python -m bench.filter_pool --rows 100000 --out /tmp/pool.jsonl      # deterministic from --seed

The docstrings come from the running Python's standard library, read with ``ast`` (no module is imported, so nothing
runs), so the pool is the same on every machine with the same Python version. Each row draws a base item (a
docstring, often followed by the first line of a second one, so there are far more distinct answers than
docstrings) and becomes, by chance: a fresh row (~30%), a near copy of an earlier row with one word in ~40 changed
(~42%), an exact copy up to case and spacing (~23%), or a row a quality check removes (too short, a refusal, a loop:
~5%). ``family`` and ``item`` in each row's ``meta`` name the top-level module and the function or class the question is
about, so a bench can count how many of them a selection covers.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sysconfig
from pathlib import Path

TEMPLATES = ("What does `{name}` do?", "Explain `{name}` from the Python standard library.",
             "How do I use `{name}`?", "Describe the purpose of `{name}`.", "What is `{name}` for in {module}?")
REFUSAL = "I'm sorry, but I can't help with that request."
MIN_WORDS = 12  # docstrings shorter than this are too thin to near-duplicate


def stdlib_docstrings() -> list[tuple[str, str, str]]:
    """(top-level module, dotted name, docstring) for every documented function and class, in a stable order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    items = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("test", "site-packages", "idlelib", "lib2to3") or "tests" in rel.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc.split()) >= MIN_WORDS:
                    items.append((module.split(".")[0], f"{module}.{node.name}", " ".join(doc.split())))
    return items


def chat(question: str, answer: str, family: str, item: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "meta": {"family": family, "item": item}}


def near_copy(row: dict, rng: random.Random) -> dict:
    words = row["messages"][1]["content"].split(" ")
    for _ in range(max(1, len(words) // 40)):
        words[rng.randrange(len(words))] = rng.choice(("often", "usually", "always", "simply", "also"))
    return chat(row["messages"][0]["content"], " ".join(words), **row["meta"])


def exact_copy(row: dict, rng: random.Random) -> dict:
    q, a = row["messages"][0]["content"], row["messages"][1]["content"]
    a = a.upper() if rng.random() < 0.5 else "  " + a.replace(" ", "  ") + " "
    return chat(q, a, **row["meta"])


def pool_rows(rows: int, seed: int = 0):
    """Yield ``rows`` chats (dicts), deterministic from ``seed``."""
    rng = random.Random(seed)
    items = stdlib_docstrings()
    fresh: list[dict] = []
    for i in range(rows):
        u = rng.random()
        if fresh and u < 0.42:
            yield near_copy(rng.choice(fresh), rng)
        elif fresh and u < 0.65:
            yield exact_copy(rng.choice(fresh), rng)
        elif u < 0.70:
            family, name, _ = rng.choice(items)
            kind = rng.randrange(3)
            answer = "Yes." if kind == 0 else REFUSAL if kind == 1 else "It returns the value. " * 20
            yield chat(rng.choice(TEMPLATES).format(name=name, module=family), answer, family, name)
        else:
            family, name, doc = rng.choice(items)
            if rng.random() < 0.8:
                doc = f"{doc} See also {rng.choice(items)[2].split('. ')[0]}."
            row = chat(rng.choice(TEMPLATES).format(name=name, module=family), doc, family, name)
            fresh.append(row)
            yield row


def write_pool(path: Path, rows: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in pool_rows(rows, seed):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    write_pool(args.out, args.rows, args.seed)


if __name__ == "__main__":
    main()
