"""Generation with transformers: one assistant turn at a time, stopping at end of turn, reusing the KV cache.

    tokenizer, views = load_views("smollm2-135m-instruct", Path("runs/sft-…"))   # {"tuned", "base"}
    gen = CachedGenerator(views["tuned"], tokenizer)
    answer = gen.generate(prompt_ids, Sampling(max_tokens=256), stop, on_text=print)

The torch twin of ``mlxsft/backends/mlx/generate.py`` with the same public face, so ``mlxsft.chat``,
``mlxsft.evaluate`` and the before/after table of ``mlxsft train`` use either backend unchanged: the same
``Answer``, ``Sampling``, ``StopCondition``, ``ModelView``, prompt rendering and stop rule (imported from
``mlxsft/backends/generation.py``, plain Python shared by both backends).

``CachedGenerator`` keeps a transformers ``DynamicCache`` and exactly the tokens fed into it; a later
prompt that starts with them only feeds the rest, and a differing tail is cropped away (or the cache is
rebuilt where a layer cannot crop), so the cache always equals a fresh prefill of the prompt.
For LoRA/DoRA runs the base view is the same model inside peft's ``disable_adapter()``: one copy of
the weights answers as both.

``generate_answer`` answers one question from a fresh cache (``mlxsft eval``); ``generate_answers_batch``
answers many at once, left-padded, with the same greedy tokens (the before/after table of ``mlxsft train``).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional

from mlxsft.backends.generation import (  # noqa: F401  (re-exported: the backend interface)
    Answer,
    ModelView,
    Sampling,
    StopCondition,
    TurnStream,
    common_prefix,
    AnswerStream,
    BatchRow,
    TextDiff,
    batch_answer,
    finish,
    render_prompt,
    shared_start,
    stop_condition,
)
from mlxsft.backends.torch.cpu_linear import packed_linears


class TorchTokenizer:
    """A Hugging Face tokenizer behind mlx-lm's ``TokenizerWrapper`` face (``_tokenizer``, ``eos_token_ids``).

    The chat and eval code unwrap ``tokenizer._tokenizer`` and read ``eos_token_ids`` as they do for MLX;
    everything else is the HF tokenizer's own.
    """

    def __init__(self, hf_tokenizer: Any, eos_token_ids: set[int] | None = None):
        self._tokenizer = hf_tokenizer
        ids = set(eos_token_ids or ())
        if hf_tokenizer.eos_token_id is not None:
            ids.add(hf_tokenizer.eos_token_id)
        self.eos_token_ids = ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


def hf_of(tokenizer: Any) -> Any:
    return tokenizer._tokenizer if isinstance(tokenizer, TorchTokenizer) else tokenizer


def wrap_tokenizer(hf_tokenizer: Any, model: Any) -> TorchTokenizer:
    """The wrapper, with the model's generation-config EOS ids (e.g. ``<|im_end|>`` and ``<|endoftext|>``)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    return TorchTokenizer(hf_tokenizer, set(eos if isinstance(eos, list) else [eos] if isinstance(eos, int) else []))


# ----------------------------------------------------------------------------- models
def load_views(spec: str, adapter: Optional[Path] = None, *, fine_tune_type: str = "lora",
               load_kwargs: Optional[dict] = None, progress: Optional[Callable[[str, float], None]] = None,
               device: str = "auto") -> tuple[TorchTokenizer, dict[str, ModelView]]:
    """(tokenizer, views): ``{"base"}`` without an adapter, else ``{"tuned", "base"}``.

    ``adapter`` is a torch run folder (or its ``best/``): PEFT adapter files, or ``trainable.safetensors``
    of a full fine-tune, whose base view loads its own copy on first use.
    """
    from mlxsft.backends.torch.device import pick_device
    from mlxsft.backends.torch.model import load_model

    kw = load_kwargs or {}
    if kw.get("quantize"):
        from mlxsft.errors import ConfigError

        raise ConfigError("quantize: the torch backend runs unquantised weights", hint="use --backend mlx")
    plan = pick_device(device, kw.get("dtype") or "float32")
    if progress:
        progress("loading model", 0.0)
    model, hf_tok, _ = load_model(spec, plan)
    tokenizer = wrap_tokenizer(hf_tok, model)
    if progress:
        progress("loading model", 1.0)
    if adapter is None:
        return tokenizer, {"base": ModelView("base", model.eval())}
    folder = Path(adapter)
    if fine_tune_type == "full":
        from mlxsft.backends.torch.checkpoint import load_full_weights

        load_full_weights(model, folder)

        def load_base() -> Any:
            return load_model(spec, plan)[0].eval()

        return tokenizer, {"tuned": ModelView("tuned", model.eval()), "base": ModelView("base", loader=load_base)}
    if not (folder / "adapter_model.safetensors").is_file():
        from mlxsft.errors import RunError

        raise RunError(f"{folder}: no PEFT adapter (adapter_model.safetensors)",
                       hint="MLX runs chat with --backend mlx")
    from peft import PeftModel

    from mlxsft.backends.torch.adapters import peft_quietly

    with peft_quietly():
        tuned = PeftModel.from_pretrained(model, str(folder), is_trainable=False).to(plan.device).eval()
    return tokenizer, {"tuned": ModelView("tuned", tuned), "base": base_view(tuned, lambda: None)}


def base_view(tuned: Any, load_base: Callable[[], Any]) -> ModelView:
    """The base model next to a tuned one: a PEFT model's own weights with the adapter off (no second copy in
    memory), else ``load_base()`` on first use (after full fine-tuning)."""
    if hasattr(tuned, "disable_adapter"):
        return ModelView("base", tuned, activate=tuned.disable_adapter)
    return ModelView("base", loader=load_base)


# ----------------------------------------------------------------------------- generation
def seed(value: int) -> None:
    """Seed sampling (``--temp`` > 0)."""
    import torch

    torch.manual_seed(value)


def sample(logits: Any, sampling: Sampling) -> int:
    """Greedy at temp 0, else temperature + nucleus (top-p) sampling."""
    import torch

    if sampling.temp <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / sampling.temp, dim=-1)
    if sampling.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < sampling.top_p  # always keeps the top token
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs / probs.sum(), 1))


def _new_cache(model: Any) -> Any:
    """An empty KV cache laid out for ``model`` (sliding-window layers included)."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def _forward_parameters(model: Any) -> Any:
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inspect.signature(base.forward).parameters


def _cache_argument(model: Any) -> str:
    """transformers 5 calls the KV cache ``cache``; 4.x (and 5 before the rename) ``past_key_values``."""
    return "cache" if "cache" in _forward_parameters(model) else "past_key_values"


def _last_logits_only(model: Any) -> dict[str, int]:
    """``logits_to_keep=1`` where the model takes it: a prompt's forward pass then runs the head on its last
    position alone. Gemma 3's head is 262k x 640: for 32 prompts of 60 tokens the whole-prompt logits were 2 GB
    and ~64 GFLOP that generation threw away."""
    return {"logits_to_keep": 1} if "logits_to_keep" in _forward_parameters(model) else {}


@dataclass
class CachedGenerator:
    """Generates assistant turns for one model view, keeping the KV cache between calls."""

    view: ModelView
    tokenizer: Any  # TorchTokenizer (or a plain HF tokenizer)
    cache: Any = None
    tokens: list[int] = field(default_factory=list)  # exactly what the cache holds

    def reset(self) -> None:
        self.cache, self.tokens = None, []

    def _new_cache(self) -> Any:
        return _new_cache(self.view.model)

    def _reuse(self, prompt: list[int]) -> int:
        """Crop the cache to the longest prefix it shares with ``prompt``; returns that length."""
        if self.cache is None:
            self.cache, self.tokens = self._new_cache(), []
        keep = min(common_prefix(self.tokens, prompt), len(prompt) - 1)  # feed at least one token
        if len(self.tokens) > keep:
            try:
                if keep == 0:
                    raise ValueError("nothing to keep")
                self.cache.crop(keep)
            except (ValueError, NotImplementedError, AttributeError, TypeError):
                self.cache, keep = self._new_cache(), 0  # e.g. sliding-window layers cannot crop
        self.tokens = list(prompt[:keep])
        return keep

    def generate(self, prompt: list[int], sampling: Sampling, stop: StopCondition, *,
                 on_text: Optional[Callable[[str], None]] = None,
                 should_stop: Optional[Callable[[], bool]] = None) -> Answer:
        return finish(self.stream(prompt, sampling, stop, on_text=on_text, should_stop=should_stop))

    def stream(self, prompt: list[int], sampling: Sampling, stop: StopCondition, *,
               on_text: Optional[Callable[[str], None]] = None,
               should_stop: Optional[Callable[[], bool]] = None) -> AnswerStream:
        """``generate``, a token per ``next()``; the view (e.g. PEFT's adapters off) is entered around each
        forward pass, so another view of the same model can run between two tokens."""
        import torch

        hf = hf_of(self.tokenizer)
        model = self.view.model
        device = next(model.parameters()).device
        cache_arg, last = _cache_argument(model), _last_logits_only(model)
        start = time.perf_counter()
        turn = TurnStream(stop, TextDiff(hf), on_text=on_text, should_stop=should_stop)
        with torch.no_grad(), self.view.activate():
            reused = self._reuse(prompt)

        def steps() -> Iterator[int]:
            feed = list(prompt[reused:])
            for _ in range(sampling.max_tokens):
                with torch.no_grad(), self.view.activate():
                    out = model(input_ids=torch.tensor([feed], device=device), use_cache=True,
                                **{cache_arg: self.cache}, **last)  # the cache object grows in place
                self.tokens += feed
                token = sample(out.logits[0, -1], sampling)
                yield token
                feed = [token]

        yield from turn.steps(steps())
        return turn.answer(prompt, reused, start, lambda ids: hf.decode(ids, skip_special_tokens=False))


def generate_answer(model: Any, tokenizer: Any, messages: list[dict], template: str, *,
                    template_kwargs: dict | None = None, max_tokens: int = 128, temp: float = 0.0,
                    top_p: float = 1.0, stop_text: str | None = None,
                    activate: Callable[[], ContextManager] = nullcontext) -> Answer:
    """Generate one assistant turn from a fresh cache (the before/after table, ``mlxsft eval``)."""
    if not isinstance(tokenizer, TorchTokenizer):
        tokenizer = wrap_tokenizer(tokenizer, model)
    prompt = render_prompt(hf_of(tokenizer), messages, template, template_kwargs)
    stop = stop_condition(tokenizer, template, template_kwargs, stop_text)
    was_training = model.training
    model.eval()
    try:
        with packed_linears(model):  # the batch's kernels too: one by one gives its greedy tokens
            gen = CachedGenerator(ModelView("model", model, activate), tokenizer)
            answer = gen.generate(prompt, Sampling(temp=temp, top_p=top_p, max_tokens=max_tokens), stop)
    finally:
        model.train(was_training)
    answer.text = answer.text.strip()
    return answer


# ----------------------------------------------------------------------------- batched generation


def generate_answers_batch(model: Any, tokenizer: Any, conversations: list[list[dict]], template: str, *,
                           template_kwargs: dict | None = None, max_tokens: int = 128, batch_size: int = 32,
                           activate: Callable[[], ContextManager] = nullcontext) -> list[Answer]:
    """Greedy answers to many conversations at once, in their order: the same answers as ``generate_answer``
    asked one by one, in a fraction of the time (one decode step costs about the same for 1 or 32 rows of a
    small model, so the before/after table asks its questions together, as the MLX backend does).

    Prompts are sorted by length and run ``batch_size`` at a time, so a chunk holds little padding; each
    row stops by the same rule as one-by-one generation (``TurnStream``: a stop token or the end-of-turn
    text), and a chunk ends when all its rows have. ``activate``: e.g. peft's ``disable_adapter`` for the
    base view of a LoRA model.
    """
    if not isinstance(tokenizer, TorchTokenizer):
        tokenizer = wrap_tokenizer(tokenizer, model)
    hf = hf_of(tokenizer)
    prompts = [render_prompt(hf, msgs, template, template_kwargs) for msgs in conversations]
    stop = stop_condition(tokenizer, template, template_kwargs)
    rows: list[Optional[BatchRow]] = [None] * len(prompts)
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        with packed_linears(model):
            for chunk in _length_chunks(prompts, batch_size):
                done = _decode_chunk(model, [prompts[i] for i in chunk], stop, hf, max_tokens, activate)
                for i, row in zip(chunk, done):
                    rows[i] = row
    finally:
        model.train(was_training)
    elapsed = time.perf_counter() - start
    total = sum(len(row.turn.generated) for row in rows)
    return [batch_answer(row, prompt, hf, elapsed, total) for row, prompt in zip(rows, prompts)]


COMPACT_AT = 0.75  # stopped rows leave the batch when the live ones are at most this share of it: a compaction
# copies the whole cache, so it waits until it saves a quarter of every later step


def _length_chunks(prompts: list[list[int]], batch_size: int) -> list[list[int]]:
    """Indices of ``prompts`` sorted by length, ``batch_size`` at a time: similar lengths pad little."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    size = max(1, batch_size)
    return [order[i:i + size] for i in range(0, len(order), size)]


def _shared_start(prompts: list[list[int]], cache: Any) -> int:
    """``shared_start`` of the prompts less their last token (whose logits give each row's first answer token),
    or 0 where a layer's cache is not the plain growing kind (a sliding window counts the padding as positions)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return 0
    return shared_start([p[:-1] for p in prompts])


def _pad_id(hf: Any, stop: StopCondition) -> int:
    """The id left padding is made of; its value never matters (the attention mask hides it)."""
    for candidate in (hf.pad_token_id, hf.eos_token_id, *sorted(stop.token_ids)):
        if candidate is not None:
            return int(candidate)
    return 0


def _decode_chunk(model: Any, prompts: list[list[int]], stop: StopCondition, hf: Any, max_tokens: int,
                  activate: Callable[[], ContextManager]) -> list[BatchRow]:
    """Greedy decoding of left-padded ``prompts`` with one KV cache, until every row has stopped or
    ``max_tokens`` are reached. Rows that stopped leave the batch (their cache rows too) once a quarter of it
    has: each step then computes only the rows still answering, where the whole chunk used to run, fed padding,
    until its longest answer ended."""
    import torch

    device = next(model.parameters()).device
    pad = _pad_id(hf, stop)
    rows = [BatchRow(stop, hf) for _ in prompts]
    batch = list(range(len(rows)))  # the row each batch position answers
    cache, cache_arg, last = _new_cache(model), _cache_argument(model), _last_logits_only(model)
    with torch.no_grad(), activate():
        shared = _shared_start(prompts, cache)
        if shared:  # what every prompt starts with, once, in a one-row pass; then a copy per row
            model(input_ids=torch.tensor([prompts[0][:shared]], device=device), use_cache=True,
                  **{cache_arg: cache}, **last)
            cache.batch_repeat_interleave(len(prompts))
        rests = [p[shared:] for p in prompts]
        width = max(len(r) for r in rests)
        # each prompt's rest left-padded after the shared start: the padding sits between the two, masked
        feed = torch.tensor([[pad] * (width - len(r)) + r for r in rests], device=device)
        mask = torch.tensor([[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in rests], device=device)
        for _ in range(max_tokens):
            # positions count real tokens only, so a padded row sees the positions it would see alone
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -feed.shape[1]:]
            out = model(input_ids=feed, attention_mask=mask, position_ids=positions, use_cache=True,
                        **{cache_arg: cache}, **last)  # the cache object grows in place
            tokens = out.logits[:, -1].argmax(-1).tolist()
            for r, token in zip(batch, tokens):
                if rows[r].live:
                    rows[r].add(token)
            live = [i for i, r in enumerate(batch) if rows[r].live]
            if not live:
                break
            if len(live) <= COMPACT_AT * len(batch):
                keep = torch.tensor(live, device=device)
                cache.batch_select_indices(keep)
                mask, batch, tokens = mask[keep], [batch[i] for i in live], [tokens[i] for i in live]
            feed = torch.tensor([[t if rows[r].live else pad] for r, t in zip(batch, tokens)], device=device)
            mask = torch.cat([mask, mask.new_ones((len(batch), 1))], dim=1)
    return rows
