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
    finish,
    render_prompt,
    stop_condition,
)


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

    tuned = PeftModel.from_pretrained(model, str(folder), is_trainable=False).to(plan.device).eval()
    base = ModelView("base", tuned, activate=tuned.disable_adapter)  # the same weights, adapter off
    return tokenizer, {"tuned": ModelView("tuned", tuned), "base": base}


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


def _cache_argument(model: Any) -> str:
    """transformers 5 calls the KV cache ``cache``; 4.x (and 5 before the rename) ``past_key_values``."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


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
        from transformers import DynamicCache

        return DynamicCache(config=self.view.model.config)

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
        cache_arg = _cache_argument(model)
        start = time.perf_counter()
        turn = TurnStream(stop, _TextDiff(hf), on_text=on_text, should_stop=should_stop)
        with torch.no_grad(), self.view.activate():
            reused = self._reuse(prompt)

        def steps() -> Iterator[int]:
            feed = list(prompt[reused:])
            for _ in range(sampling.max_tokens):
                with torch.no_grad(), self.view.activate():
                    out = model(input_ids=torch.tensor([feed], device=device), use_cache=True,
                                **{cache_arg: self.cache})  # the cache object grows in place
                self.tokens += feed
                token = sample(out.logits[0, -1], sampling)
                yield token
                feed = [token]

        yield from turn.steps(steps())
        return turn.answer(prompt, reused, start, lambda ids: hf.decode(ids, skip_special_tokens=False))


class _TextDiff:
    """Decodes the whole answer so far and returns what is new, holding back an unfinished UTF-8 character."""

    def __init__(self, hf: Any):
        self.hf, self.ids, self.shown = hf, [], ""

    def _text(self) -> str:
        return self.hf.decode(self.ids, skip_special_tokens=False)

    def add(self, token: int) -> str:
        self.ids.append(token)
        text = self._text()
        if text.endswith("\ufffd") or len(text) <= len(self.shown):
            return ""
        new, self.shown = text[len(self.shown):], text
        return new

    def tail(self) -> str:
        return self._text()[len(self.shown):]


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
        gen = CachedGenerator(ModelView("model", model, activate), tokenizer)
        answer = gen.generate(prompt, Sampling(temp=temp, top_p=top_p, max_tokens=max_tokens), stop)
    finally:
        model.train(was_training)
    answer.text = answer.text.strip()
    return answer
