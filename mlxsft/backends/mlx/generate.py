"""Greedy/sampled answers from an mlx-lm model with the run's chat template, stopping at end of turn.

Used by the before/after table at the end of ``mlxsft train`` and by ``mlxsft eval``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

SENTINEL = "\u2063MLXSFT\u2063"


@dataclass
class Answer:
    text: str
    tokens: int
    tokens_per_sec: float


def end_of_turn_text(hf_tokenizer: Any, template: str, template_kwargs: dict | None = None) -> str:
    """What the template writes right after an assistant message (e.g. ``<|im_end|>``)."""
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": SENTINEL}]
    text = hf_tokenizer.apply_chat_template(msgs, chat_template=template, tokenize=False,
                                            **(template_kwargs or {}))
    tail = text.split(SENTINEL, 1)[-1].strip()
    return tail.split("\n")[0].strip() if tail else ""


def render_prompt(hf_tokenizer: Any, messages: list[dict], template: str, template_kwargs: dict | None = None) -> list[int]:
    text = hf_tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                            add_generation_prompt=True, **(template_kwargs or {}))
    return hf_tokenizer.encode(text, add_special_tokens=False)


def generate_answer(model: Any, tokenizer: Any, messages: list[dict], template: str, *,
                    template_kwargs: dict | None = None, max_tokens: int = 128, temp: float = 0.0,
                    top_p: float = 1.0, stop_text: str | None = None) -> Answer:
    """Generate one assistant turn. ``tokenizer`` is mlx-lm's TokenizerWrapper."""
    from mlx_lm.generate import stream_generate
    from mlx_lm.sample_utils import make_sampler

    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    prompt = render_prompt(hf, messages, template, template_kwargs)
    stop = stop_text if stop_text is not None else end_of_turn_text(hf, template, template_kwargs)
    stop_ids = set(getattr(tokenizer, "eos_token_ids", None) or [])
    if stop:
        ids = hf.encode(stop, add_special_tokens=False)
        if len(ids) == 1:
            stop_ids.add(ids[0])
    text, n, start = "", 0, time.perf_counter()
    sampler = make_sampler(temp=temp, top_p=top_p)
    for resp in stream_generate(model, tokenizer, prompt, max_tokens=max_tokens, sampler=sampler):
        n += 1
        if resp.token in stop_ids:
            break
        text += resp.text
        if stop and stop in text:
            text = text.split(stop, 1)[0]
            break
    dt = time.perf_counter() - start
    return Answer(text=text.strip(), tokens=n, tokens_per_sec=n / dt if dt > 0 else 0.0)
