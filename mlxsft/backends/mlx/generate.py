"""Generation with mlx-lm: one assistant turn at a time, stopping at end of turn, reusing the KV cache.

    gen = CachedGenerator(ModelView("tuned", model), tokenizer)
    answer = gen.generate(prompt_ids, Sampling(max_tokens=256), stop, on_text=print)

``CachedGenerator`` keeps the tokens its KV cache holds; a later prompt that starts with them (the next
turn of a chat) only feeds the new tokens. Where the re-rendered history differs from what was generated
(templates re-tokenize an answer), the cache is trimmed back to the common prefix, so the cache always
equals a fresh prefill of the prompt. The token loop is mlx-lm's ``generate_step``; tokens/s match
``mlx_lm.generate`` (``bench/bench_generate.py``).

``load_views`` loads a base model (``mlxsft.models.load_mlx``) with a run's adapters
(``mlx_lm.utils.load_adapters``, no fuse) and returns the ``base`` and ``tuned`` views: for LoRA/DoRA
both share one copy of the weights (``AdapterSwitch`` swaps the adapter layers out for the base turn).

``generate_answer`` (a fresh cache per question) serves the before/after table of ``mlxsft train`` and
``mlxsft eval``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional

SENTINEL = "\u2063MLXSFT\u2063"


@dataclass
class Answer:
    text: str
    tokens: int  # generated tokens, the stop token included
    tokens_per_sec: float  # decode speed, prompt processing excluded
    prompt_tokens: int = 0  # tokens of the rendered prompt
    reused_tokens: int = 0  # of which came from the KV cache of the previous turn
    finish_reason: str = "stop"  # stop | length | interrupted
    elapsed_s: float = 0.0
    raw_text: str = ""  # the answer tokens decoded as they are (what a chat history should hold)


@dataclass
class Sampling:
    temp: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256


@dataclass(frozen=True)
class StopCondition:
    """Where an assistant turn ends: any of ``token_ids`` (EOS, end-of-turn) or ``text`` in the output."""

    token_ids: frozenset[int] = frozenset()
    text: str = ""  # an end-of-turn marker that is not a single token


# ----------------------------------------------------------------------------- templates and stops
def end_of_turn_text(hf_tokenizer: Any, template: str, template_kwargs: dict | None = None) -> str:
    """What the template writes right after an assistant message (e.g. ``<|im_end|>``)."""
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": SENTINEL}]
    text = hf_tokenizer.apply_chat_template(msgs, chat_template=template, tokenize=False,
                                            **(template_kwargs or {}))
    tail = text.split(SENTINEL, 1)[-1].strip()
    return tail.split("\n")[0].strip() if tail else ""


def render_prompt(hf_tokenizer: Any, messages: list[dict], template: str,
                  template_kwargs: dict | None = None) -> list[int]:
    """Token ids of ``messages`` plus the assistant header, ready for generation."""
    text = hf_tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                            add_generation_prompt=True, **(template_kwargs or {}))
    return hf_tokenizer.encode(text, add_special_tokens=False)


def stop_condition(tokenizer: Any, template: str, template_kwargs: dict | None = None,
                   stop_text: str | None = None) -> StopCondition:
    """EOS ids plus the template's end-of-turn marker (as a token when it is one, else as text)."""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    ids = set(getattr(tokenizer, "eos_token_ids", None) or [])
    if getattr(hf, "eos_token_id", None) is not None:
        ids.add(hf.eos_token_id)
    text = stop_text if stop_text is not None else end_of_turn_text(hf, template, template_kwargs)
    if text:
        enc = hf.encode(text, add_special_tokens=False)
        if len(enc) == 1:
            return StopCondition(frozenset(ids | {enc[0]}), "")
    return StopCondition(frozenset(ids), text)


class StopTextFilter:
    """Streams text but holds back what could be the start of the stop text, and cuts at the stop text."""

    def __init__(self, stop: str):
        self.stop = stop
        self.pending = ""
        self.hit = False

    def feed(self, segment: str) -> str:
        if not self.stop:
            return segment
        self.pending += segment
        at = self.pending.find(self.stop)
        if at >= 0:
            self.hit = True
            out, self.pending = self.pending[:at], ""
            return out
        keep = next((k for k in range(min(len(self.stop) - 1, len(self.pending)), 0, -1)
                     if self.stop.startswith(self.pending[-k:])), 0)
        out, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep:]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


# ----------------------------------------------------------------------------- models
class AdapterSwitch:
    """Swaps a model's LoRA/DoRA layers for their base layers and back, in place.

    One copy of the weights then answers as the base model and as the tuned model, which halves the
    memory of ``--compare`` next to loading the base twice.
    """

    def __init__(self, model: Any):
        self.model = model
        self.adapted = [(name, m) for name, m in model.named_modules() if hasattr(m, "lora_a")]

    @property
    def can_switch(self) -> bool:
        return bool(self.adapted) and all(hasattr(m, "linear") or hasattr(m, "embedding") for _, m in self.adapted)

    @contextmanager
    def base(self) -> Iterator[None]:
        from mlx.utils import tree_unflatten

        inner = [(n, m.linear if hasattr(m, "linear") else m.embedding) for n, m in self.adapted]
        self.model.update_modules(tree_unflatten(inner))
        try:
            yield
        finally:
            self.model.update_modules(tree_unflatten(self.adapted))


class ModelView:
    """A named model to generate with, plus what to enter around generation (e.g. adapters off).

    ``loader`` defers loading until the view is first used (a full fine-tune's base in ``/compare on``).
    """

    def __init__(self, name: str, model: Any = None, activate: Callable[[], ContextManager] = nullcontext,
                 loader: Optional[Callable[[], Any]] = None):
        self.name, self._model, self.activate, self._loader = name, model, activate, loader

    @property
    def model(self) -> Any:
        if self._model is None and self._loader is not None:
            self._model = self._loader()
        return self._model


def load_views(spec: str, adapter: Optional[Path] = None, *, fine_tune_type: str = "lora",
               load_kwargs: Optional[dict] = None, progress: Optional[Callable[[str, float], None]] = None,
               ) -> tuple[Any, dict[str, ModelView]]:
    """(TokenizerWrapper, views): ``{"base"}`` without an adapter, else ``{"tuned", "base"}``.

    The base view of a full fine-tune loads its own copy on first use; LoRA/DoRA share the weights.
    """
    from mlxsft.models import load_mlx

    kw = {k: v for k, v in (load_kwargs or {}).items() if v is not None}
    model, tokenizer, _ = load_mlx(spec, progress=progress, **kw)
    if adapter is None:
        model.eval()
        return tokenizer, {"base": ModelView("base", model)}
    from mlx_lm.utils import load_adapters

    load_adapters(model, str(adapter))
    model.eval()
    views = {"tuned": ModelView("tuned", model)}
    switch = AdapterSwitch(model)
    if fine_tune_type != "full" and switch.can_switch:
        views["base"] = ModelView("base", model, activate=switch.base)
    else:
        def load_base() -> Any:
            base, _, _ = load_mlx(spec, **kw)
            base.eval()
            return base

        views["base"] = ModelView("base", loader=load_base)
    return tokenizer, views


# ----------------------------------------------------------------------------- generation
def seed(value: int) -> None:
    """Seed sampling (``--temp`` > 0)."""
    import mlx.core as mx

    mx.random.seed(value)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class CachedGenerator:
    """Generates assistant turns for one model view, keeping the KV cache between calls."""

    view: ModelView
    tokenizer: Any  # mlx-lm TokenizerWrapper
    cache: Any = None
    tokens: list[int] = field(default_factory=list)  # exactly what the cache holds

    def reset(self) -> None:
        self.cache, self.tokens = None, []

    def _reuse(self, prompt: list[int]) -> int:
        """Trim the cache to the longest prefix it shares with ``prompt``; returns that length."""
        from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

        if self.cache is None:
            self.cache, self.tokens = make_prompt_cache(self.view.model), []
        keep = min(_common_prefix(self.tokens, prompt), len(prompt) - 1)  # feed at least one token
        extra = len(self.tokens) - keep
        if extra > 0:
            trimmable = keep > 0 and can_trim_prompt_cache(self.cache)
            if not trimmable or trim_prompt_cache(self.cache, extra) != extra:
                self.cache, keep = make_prompt_cache(self.view.model), 0
        self.tokens = list(prompt[:keep])
        return keep

    def _record(self, seq: list[int]) -> None:
        """After a turn the cache holds the prompt and every token sampled (mlx-lm feeds each before yielding it)."""
        offset = getattr(self.cache[0], "offset", len(seq)) if self.cache else 0
        if offset != len(seq):  # unexpected: never trust a cache we cannot account for
            self.reset()
        else:
            self.tokens = seq

    def generate(self, prompt: list[int], sampling: Sampling, stop: StopCondition, *,
                 on_text: Optional[Callable[[str], None]] = None,
                 should_stop: Optional[Callable[[], bool]] = None) -> Answer:
        import mlx.core as mx
        from mlx_lm.generate import generate_step
        from mlx_lm.sample_utils import make_sampler

        emit = on_text or (lambda s: None)
        start = time.perf_counter()
        with self.view.activate():
            reused = self._reuse(prompt)
            detok = self.tokenizer.detokenizer
            cut = StopTextFilter(stop.text)
            generated: list[int] = []
            parts: list[str] = []
            finish, first_at = "length", None
            steps = generate_step(mx.array(prompt[reused:]), self.view.model, prompt_cache=self.cache,
                                  sampler=make_sampler(temp=sampling.temp, top_p=sampling.top_p),
                                  max_tokens=sampling.max_tokens)
            try:
                for token, _ in steps:
                    first_at = first_at or time.perf_counter()
                    generated.append(token)
                    if token in stop.token_ids:
                        finish = "stop"
                        break
                    detok.add_token(token)
                    piece = cut.feed(detok.last_segment)
                    if piece:
                        parts.append(piece)
                        emit(piece)
                    if cut.hit:
                        finish = "stop"
                        break
                    if should_stop is not None and should_stop():
                        finish = "interrupted"
                        break
            finally:
                steps.close()
                self._record(list(prompt) + generated)
        if not cut.hit:
            detok.finalize()
            tail = cut.feed(detok.last_segment) + cut.flush()
            if tail:
                parts.append(tail)
                emit(tail)
        end = time.perf_counter()
        n = len(generated)
        body = generated[:-1] if finish == "stop" and generated and generated[-1] in stop.token_ids else generated
        raw = self.tokenizer.decode(body)
        raw = raw.split(stop.text, 1)[0] if stop.text else raw
        decode_s = end - first_at if first_at else 0.0
        tps = (n - 1) / decode_s if n > 1 and decode_s > 0 else (n / (end - start) if end > start else 0.0)
        return Answer(text="".join(parts), tokens=n, tokens_per_sec=tps, prompt_tokens=len(prompt),
                      reused_tokens=reused, finish_reason=finish, elapsed_s=end - start, raw_text=raw)


def generate_answer(model: Any, tokenizer: Any, messages: list[dict], template: str, *,
                    template_kwargs: dict | None = None, max_tokens: int = 128, temp: float = 0.0,
                    top_p: float = 1.0, stop_text: str | None = None,
                    activate: Callable[[], ContextManager] = nullcontext) -> Answer:
    """Generate one assistant turn from a fresh cache. ``tokenizer`` is mlx-lm's TokenizerWrapper."""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    prompt = render_prompt(hf, messages, template, template_kwargs)
    stop = stop_condition(tokenizer, template, template_kwargs, stop_text)
    gen = CachedGenerator(ModelView("model", model, activate), tokenizer)
    answer = gen.generate(prompt, Sampling(temp=temp, top_p=top_p, max_tokens=max_tokens), stop)
    answer.text = answer.text.strip()
    return answer


def generate_answers_batch(model: Any, tokenizer: Any, conversations: list[list[dict]], template: str, *,
                           template_kwargs: dict | None = None, max_tokens: int = 128,
                           batch_size: int = 32) -> list[Answer]:
    """Greedy answers to many conversations at once (mlx-lm's BatchGenerator).

    On a CPU one decode step costs about the same for 1 or 32 sequences (per-op overhead dominates a
    small model), so the before/after table asks all its questions together: ~20x faster than one by one.
    """
    from mlx_lm.generate import BatchGenerator

    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    prompts = [render_prompt(hf, msgs, template, template_kwargs) for msgs in conversations]
    stop = stop_condition(tokenizer, template, template_kwargs)
    stop_seqs = [[t] for t in sorted(stop.token_ids)]
    if stop.text:
        stop_seqs.append(hf.encode(stop.text, add_special_tokens=False))
    gen = BatchGenerator(model, stop_tokens=stop_seqs, completion_batch_size=batch_size,
                         prefill_batch_size=min(8, batch_size))
    start = time.perf_counter()
    uids = gen.insert(prompts, [max_tokens] * len(prompts))
    tokens: dict[int, list[int]] = {u: [] for u in uids}
    finish: dict[int, str] = {}
    try:
        while responses := gen.next_generated():
            for r in responses:
                tokens[r.uid].append(r.token)
                if r.finish_reason is not None:
                    finish[r.uid] = r.finish_reason
    finally:
        gen.close()
    elapsed = time.perf_counter() - start
    total = sum(len(t) for t in tokens.values())
    out = []
    for uid, prompt in zip(uids, prompts):
        ids = [t for t in tokens[uid] if t not in stop.token_ids]
        raw = hf.decode(ids)
        text = raw.split(stop.text, 1)[0] if stop.text else raw
        out.append(Answer(text=text.strip(), tokens=len(tokens[uid]), tokens_per_sec=total / elapsed if elapsed else 0.0,
                          prompt_tokens=len(prompt), finish_reason=finish.get(uid, "length"),
                          elapsed_s=elapsed, raw_text=raw))
    return out
