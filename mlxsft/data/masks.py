"""Loss masks: which characters of a rendered conversation are supervised, then which tokens.

    from mlxsft.data.masks import supervised_spans, spans_to_mask
    text, spans = supervised_spans(renderer, conversation, train_on="assistant")
    mask = spans_to_mask(offsets, spans)                     # offsets from the tokenizer, one (start, end) per token

The spans come from rendering conversation prefixes, so no ``{% generation %}`` markers are needed and any
template works. For assistant message ``i``:
  start = where ``render(messages[:i], add_generation_prompt=True)`` stops matching the full text
          (the role header and generation prompt stay unsupervised);
  end   = the length of ``render(messages[:i+1])`` when that is a prefix of the full text, so the end-of-turn
          token (``<|im_end|>``, ``<|eot_id|>``, ``<end_of_turn>``) is learned and the model learns to stop.
Whitespace the template writes after the end-of-turn token (ChatML's newline) is not supervised: generation
stops at the token, so the model never has to produce it. Templates that rewrite history (Qwen3 drops old
reasoning) make the prefix differ from the full text; then the turn ends at the template's end-of-turn text.
"""

from __future__ import annotations

import os

import numpy as np

from mlxsft.data.records import Conversation
from mlxsft.data.templates import TemplateRenderer

TRAIN_ON = ("assistant", "last", "all")


def supervised_spans(renderer: TemplateRenderer, conv: Conversation, train_on: str) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text of a chat row and the character ranges to learn."""
    msgs = renderer.messages(conv.messages)
    full = renderer.render(msgs, conv.tools)
    if train_on == "all":
        return full, [(0, len(full))]
    targets = [i for i, m in enumerate(conv.messages)
               if m["role"] == "assistant" and i >= conv.prompt_messages and m.get("weight", 1) != 0]
    if train_on == "last":
        targets = targets[-1:]
    spans = []
    for i in targets:
        before = renderer.render(msgs[:i], conv.tools, add_generation_prompt=True)
        start = len(os.path.commonprefix([full, before]))
        through = renderer.render(msgs[: i + 1], conv.tools)
        if full.startswith(through):
            end = len(through)
        else:
            eot = renderer.end_of_turn
            at = full.find(eot, start) if eot else -1
            end = at + len(eot) if at >= 0 else len(os.path.commonprefix([full, through]))
        while end > start and full[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return full, spans


def spans_to_mask(offsets: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """1 for every token whose characters overlap a span (a token straddling a boundary counts as inside)."""
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    mask = np.zeros(len(offsets), dtype=bool)
    starts, ends = offsets[:, 0], offsets[:, 1]
    for a, b in spans:
        mask |= (ends > a) & (starts < b)
    return mask.astype(np.int8)
