"""Greedy/sampled answers from a transformers model with the run's chat template, stopping at end of turn.

    answer = generate_answer(model, hf_tokenizer, [{"role": "user", "content": "Hi"}], template, max_tokens=64)

The torch twin of ``mlxsft/backends/mlx/generate.py``: the same prompt rendering, the same stop rule
(end-of-turn text or an EOS id) and the same ``Answer`` record, so ``mlxsft.evaluate.compare``, chat and
eval treat both backends alike.
"""

from __future__ import annotations

import time
from typing import Any

from mlxsft.backends.mlx.generate import Answer, end_of_turn_text, render_prompt  # plain Python, no mlx import

__all__ = ["Answer", "generate_answer", "stop_token_ids"]


def stop_token_ids(model: Any, hf_tokenizer: Any, stop: str) -> list[int]:
    """EOS ids of the tokenizer and generation config, plus the end-of-turn text when it is one token."""
    ids: set[int] = set()
    for v in (getattr(hf_tokenizer, "eos_token_id", None), getattr(model.generation_config, "eos_token_id", None)):
        ids.update(v if isinstance(v, list) else [v] if isinstance(v, int) else [])
    if stop:
        enc = hf_tokenizer.encode(stop, add_special_tokens=False)
        if len(enc) == 1:
            ids.add(enc[0])
    return sorted(ids)


def generate_answer(model: Any, tokenizer: Any, messages: list[dict], template: str, *,
                    template_kwargs: dict | None = None, max_tokens: int = 128, temp: float = 0.0,
                    top_p: float = 1.0, stop_text: str | None = None) -> Answer:
    """Generate one assistant turn. ``tokenizer`` is the Hugging Face tokenizer."""
    import torch
    from transformers import GenerationConfig

    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    prompt = render_prompt(hf, messages, template, template_kwargs)
    stop = stop_text if stop_text is not None else end_of_turn_text(hf, template, template_kwargs)
    stop_ids = stop_token_ids(model, hf, stop)
    pad = hf.pad_token_id if hf.pad_token_id is not None else (stop_ids[0] if stop_ids else 0)
    # a fresh config: the checkpoint's sampling defaults must not leak into greedy decoding
    gen = GenerationConfig(max_new_tokens=max_tokens, do_sample=temp > 0, eos_token_id=stop_ids or None,
                           pad_token_id=pad, use_cache=True,
                           **({"temperature": temp, "top_p": top_p} if temp > 0 else {}))
    device = next(model.parameters()).device
    ids = torch.tensor([prompt], device=device)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen)
    finally:
        model.train(was_training)
    dt = time.perf_counter() - start
    new = out[0, len(prompt):].tolist()
    n = len(new)
    for i, tok in enumerate(new):
        if tok in stop_ids:
            new = new[:i]
            break
    text = hf.decode(new, skip_special_tokens=True)
    if stop and stop in text:
        text = text.split(stop, 1)[0]
    return Answer(text=text.strip(), tokens=n, tokens_per_sec=n / dt if dt > 0 else 0.0)
