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

``generate_answer`` answers one question from a fresh cache; ``generate_answers_batch`` answers many at once
(``batch.py``: one prefill per distinct prompt, rows refilled as answers end, per-row seeds), for the
before/after table of ``mlxsft train``, ``mlxsft eval`` and the local teacher of curation.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional, Sequence

from mlxsft.backends.generation import (  # noqa: F401  (re-exported: the backend interface)
    Answer,
    ModelView,
    Sampling,
    StopCondition,
    TurnStream,
    common_prefix,
    AnswerStream,
    batch_answer,
    finish,
    hf_tokenizer,
    render_prompt,
    stop_condition,
)


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
    return tokenizer, {"tuned": ModelView("tuned", model),
                       "base": base_view(model, fine_tune_type, lambda: load_mlx(spec, **kw)[0].eval())}


def base_view(tuned: Any, fine_tune_type: str, load_base: Callable[[], Any]) -> ModelView:
    """The base model next to a tuned one: for LoRA/DoRA the same weights with the adapter layers swapped out
    (no second copy in memory), else ``load_base()`` on first use."""
    switch = AdapterSwitch(tuned)
    if fine_tune_type != "full" and switch.can_switch:
        return ModelView("base", tuned, activate=switch.base)
    return ModelView("base", loader=load_base)


# ----------------------------------------------------------------------------- generation
def seed(value: int) -> None:
    """Seed sampling (``--temp`` > 0)."""
    import mlx.core as mx

    mx.random.seed(value)


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
        keep = min(common_prefix(self.tokens, prompt), len(prompt) - 1)  # feed at least one token
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
        return finish(self.stream(prompt, sampling, stop, on_text=on_text, should_stop=should_stop))

    def stream(self, prompt: list[int], sampling: Sampling, stop: StopCondition, *,
               on_text: Optional[Callable[[str], None]] = None,
               should_stop: Optional[Callable[[], bool]] = None) -> AnswerStream:
        """``generate``, a token per ``next()``; the view is entered around each token's forward pass, so
        another view of the same weights (base, adapters off) can run between two of them."""
        import mlx.core as mx
        from mlx_lm.generate import generate_step
        from mlx_lm.sample_utils import make_sampler

        start = time.perf_counter()
        with self.view.activate():
            reused = self._reuse(prompt)
        turn = TurnStream(stop, _Detokenizer(self.tokenizer.detokenizer), on_text=on_text, should_stop=should_stop)
        steps = generate_step(mx.array(prompt[reused:]), self.view.model, prompt_cache=self.cache,
                              sampler=make_sampler(temp=sampling.temp, top_p=sampling.top_p),
                              max_tokens=sampling.max_tokens)

        def tokens() -> Iterator[int]:
            while True:
                with self.view.activate():  # the next forward pass is built (and queued) inside next()
                    try:
                        token, _ = next(steps)
                    except StopIteration:
                        return
                yield token

        try:
            yield from turn.steps(tokens())
        finally:
            steps.close()
            self._record(list(prompt) + turn.generated)
        return turn.answer(prompt, reused, start, self.tokenizer.decode)


class _Detokenizer:
    """mlx-lm's streaming detokenizer behind ``generation.Decoder``."""

    def __init__(self, detok: Any):
        self.detok = detok
        detok.reset()

    def add(self, token: int) -> str:
        self.detok.add_token(token)
        return self.detok.last_segment

    def tail(self) -> str:
        self.detok.finalize()
        return self.detok.last_segment


def generate_answer(model: Any, tokenizer: Any, messages: list[dict], template: str, *,
                    template_kwargs: dict | None = None, max_tokens: int = 128, temp: float = 0.0,
                    top_p: float = 1.0, stop_text: str | None = None,
                    activate: Callable[[], ContextManager] = nullcontext) -> Answer:
    """Generate one assistant turn from a fresh cache. ``tokenizer`` is mlx-lm's TokenizerWrapper."""
    hf = hf_tokenizer(tokenizer)
    prompt = render_prompt(hf, messages, template, template_kwargs)
    stop = stop_condition(tokenizer, template, template_kwargs, stop_text)
    gen = CachedGenerator(ModelView("model", model, activate), tokenizer)
    answer = gen.generate(prompt, Sampling(temp=temp, top_p=top_p, max_tokens=max_tokens), stop)
    answer.text = answer.text.strip()
    return answer


def make_sampler(temp: float, top_p: float = 1.0) -> Callable:
    """mlx-lm's sampler for ``generate_answers_batch`` (``temp`` 0: greedy)."""
    from mlx_lm.sample_utils import make_sampler as mlx_lm_sampler

    return mlx_lm_sampler(temp=temp, top_p=top_p)


def generate_answers_batch(model: Any, tokenizer: Any, conversations: list[list[dict]], template: str, *,
                           template_kwargs: dict | None = None, max_tokens: int = 128,
                           batch_size: int = 32, sampler: Optional[Callable] = None,
                           activate: Callable[[], ContextManager] = nullcontext, temp: float = 0.0,
                           top_p: float = 1.0, seeds: Optional[Sequence[int]] = None) -> list[Answer]:
    """Answers to many conversations at once, in their order: greedy by default, the same tokens as
    ``generate_answer`` one by one (the before/after table, ``mlxsft eval``).

    ``temp``/``top_p`` sample (curation); ``seeds[i]`` seeds answer ``i`` alone, so it does not depend on the
    batch it ran in (without ``seeds`` they are drawn from ``mx.random``, which ``seed()`` sets). A conversation
    asked K times is prefilled once (``batch.py``: shared prefill, slots refilled as answers end). ``sampler``:
    an mlx-lm sampler instead, run through mlx-lm's ``BatchGenerator`` (one random stream for the batch), as is
    a model whose cache is not mlx-lm's plain ``KVCache``. ``activate``: entered around the whole generation
    (the base view of a LoRA model: adapters swapped out).
    """
    from mlxsft.backends.mlx import batch

    hf = hf_tokenizer(tokenizer)
    prompts = [render_prompt(hf, msgs, template, template_kwargs) for msgs in conversations]
    stop = stop_condition(tokenizer, template, template_kwargs)
    with activate():
        if sampler is None and batch.supports(model):
            if temp > 0 and seeds is None:
                seeds = drawn_seeds(len(prompts))
            start = time.perf_counter()
            rows = batch.decode_rows(model, prompts, stop, hf, Sampling(temp=temp, top_p=top_p, max_tokens=max_tokens),
                                     seeds=seeds, slots=batch_size)
            elapsed = time.perf_counter() - start
            total = sum(len(row.turn.generated) for row in rows)
            return [batch_answer(row, prompt, hf, elapsed, total) for row, prompt in zip(rows, prompts)]
        if sampler is None and temp > 0:
            sampler = make_sampler(temp, top_p)
        return _mlx_lm_batch(model, hf, prompts, stop, max_tokens, batch_size, sampler)


def drawn_seeds(n: int) -> list[int]:
    """``n`` row seeds from mlx's global random state (``seed()``)."""
    import mlx.core as mx

    return mx.random.randint(0, 1 << 31, (n,)).tolist()


def _mlx_lm_batch(model: Any, hf: Any, prompts: list[list[int]], stop: StopCondition, max_tokens: int,
                  batch_size: int, sampler: Optional[Callable]) -> list[Answer]:
    """mlx-lm's ``BatchGenerator`` (continuous batching, one prefill per request, a sampler for the batch)."""
    from mlx_lm.generate import BatchGenerator

    stop_seqs = [[t] for t in sorted(stop.token_ids)]
    if stop.text:
        stop_seqs.append(hf.encode(stop.text, add_special_tokens=False))
    gen = BatchGenerator(model, stop_tokens=stop_seqs, completion_batch_size=batch_size,
                         prefill_batch_size=min(8, batch_size), **({"sampler": sampler} if sampler else {}))
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
                          elapsed_s=elapsed, raw_text=raw, token_ids=ids))
    return out
