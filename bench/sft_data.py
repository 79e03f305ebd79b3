"""The benchmark's chat data: bundled conversations recombined into rows of a realistic length spread.

    python -m bench.sft_data --out /tmp/sftdata --rows 96 --valid-rows 32     # writes train.jsonl, valid.jsonl

The bundled dataset (``mlxsft/data/bundled``) is short: 37-191 tokens per row with SmolLM2's template,
median 62. Real SFT chats spread far wider, so every bench row gets a target length drawn log-uniformly
from ``[MIN_TOKENS, MAX_TOKENS]`` (60-650 tokens; the default 96 rows measure 37-670 tokens with SmolLM2's
template, median 171, mean 218, 30% of tokens in the supervised last turn) and is built from bundled conversations,
drawn with a fixed seed, until the next one would overshoot the target (always at least one):

* ``chat`` rows (half): the conversations laid end to end as one multi-turn chat (long context, the last
  assistant turn supervised, like a chat log's final answer);
* ``answers`` rows (half): one user turn asking all the drawn questions as a numbered list and one assistant
  turn answering them all (a long supervised answer).

Training rows come from the bundled train split and validation rows from the bundled valid split only, so
no validation conversation is ever trained on. Token counts are estimated from characters while building
(``TOKENS_PER_CHAR`` and per-message overheads measured on SmolLM2's tokenizer and template); the bench
prints the real token statistics of what it trained on. Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from mlxsft.data.bundled_paths import bundled_path

MIN_TOKENS, MAX_TOKENS = 60, 650
TOKENS_PER_CHAR = 0.29  # least-squares fit of SmolLM2 token counts on recombined bundled rows
TEMPLATE_TOKENS = 25  # default system prompt + first turn markers
TURN_TOKENS = 4  # <|im_start|>role\n ... <|im_end|>\n
SEED = 1234


def _tokens(messages: list[dict]) -> int:
    return TEMPLATE_TOKENS + sum(TURN_TOKENS + TOKENS_PER_CHAR * len(m["content"]) for m in messages)


def _turns(conv: dict) -> list[dict]:
    return [m for m in conv["messages"] if m["role"] != "system"]


def _first_pair(conv: dict) -> tuple[str, str]:
    turns = _turns(conv)
    user = next(m["content"] for m in turns if m["role"] == "user")
    answer = next(m["content"] for m in turns if m["role"] == "assistant")
    return user, answer


def _chat_row(convs: list[dict]) -> list[dict]:
    system = [m for m in convs[0]["messages"] if m["role"] == "system"][:1]
    return system + [m for c in convs for m in _turns(c)]


def _answers_row(convs: list[dict]) -> list[dict]:
    pairs = [_first_pair(c) for c in convs]
    if len(pairs) == 1:
        return [{"role": "user", "content": pairs[0][0]}, {"role": "assistant", "content": pairs[0][1]}]
    question = "Please answer each of these:\n" + "\n".join(f"{i}. {q}" for i, (q, _) in enumerate(pairs, 1))
    answer = "\n".join(f"{i}. {a}" for i, (_, a) in enumerate(pairs, 1))
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def make_rows(source: list[dict], n_rows: int, seed: int) -> list[dict]:
    """``n_rows`` chat rows with target lengths log-uniform in [MIN_TOKENS, MAX_TOKENS]."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n_rows):
        target = math.exp(rng.uniform(math.log(MIN_TOKENS), math.log(MAX_TOKENS)))
        build = _chat_row if rng.random() < 0.5 else _answers_row
        picked = [rng.choice(source)]
        while True:
            candidate = picked + [rng.choice(source)]
            if _tokens(build(candidate)) > target:
                break
            picked = candidate
        rows.append({"messages": build(picked)})
    return rows


def write_dataset(out: Path, train_rows: int, valid_rows: int, seed: int = SEED) -> Path:
    """Write ``train.jsonl`` and ``valid.jsonl`` under ``out`` (created); returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train", train_rows, 0), ("valid", valid_rows, 1)):
        source = [json.loads(line) for line in bundled_path(split).read_text().splitlines() if line.strip()]
        rows = make_rows(source, n, seed * 2 + offset)
        tmp = out / f".{split}.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        tmp.replace(out / f"{split}.jsonl")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=96)
    ap.add_argument("--valid-rows", type=int, default=32)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    write_dataset(args.out, args.rows, args.valid_rows, args.seed)
    print(f"wrote {args.out}/train.jsonl ({args.rows} rows) and valid.jsonl ({args.valid_rows} rows)")


if __name__ == "__main__":
    main()
