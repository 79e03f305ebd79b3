"""Backend-neutral pieces of generation: answers, sampling settings, where a turn stops, and the token loop.

    turn = TurnStream(stop, decoder, on_text=print)
    turn.run(token_iterator)                     # the backend's decode loop yields token ids
    answer = turn.answer(prompt, reused, start, decode)

Both ``mlxsft/backends/mlx/generate.py`` and ``mlxsft/backends/torch/generate.py`` build on this module:
they differ only in how tokens are produced (mlx-lm's ``generate_step`` vs a transformers forward with a
``DynamicCache``) and decoded incrementally; stopping at EOS / end-of-turn tokens or text, streaming
without ever showing part of a stop marker, Ctrl-C, and the tokens/s figures are written once here.
Plain Python: nothing here imports mlx or torch.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Generator, Iterable, Iterator, Optional, Protocol

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
    token_ids: list[int] = field(default_factory=list)  # the generated ids, the stop token excluded


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


def hf_tokenizer(tokenizer: Any) -> Any:
    """The transformers tokenizer behind a backend's tokenizer (mlx-lm's TokenizerWrapper and the torch
    wrapper keep it as ``_tokenizer``; a plain transformers tokenizer is returned as it is)."""
    if type(tokenizer).__module__.startswith("transformers."):
        return tokenizer  # a transformers tokenizer (whose own _tokenizer is the Rust one underneath)
    return getattr(tokenizer, "_tokenizer", tokenizer)


def render_prompt(hf_tokenizer: Any, messages: list[dict], template: str,
                  template_kwargs: dict | None = None) -> list[int]:
    """Token ids of ``messages`` plus the assistant header, ready for generation."""
    text = hf_tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                            add_generation_prompt=True, **(template_kwargs or {}))
    return hf_tokenizer.encode(text, add_special_tokens=False)


def stop_condition(tokenizer: Any, template: str, template_kwargs: dict | None = None,
                   stop_text: str | None = None) -> StopCondition:
    """EOS ids plus the template's end-of-turn marker (as a token when it is one, else as text)."""
    hf = hf_tokenizer(tokenizer)
    listed = getattr(tokenizer, "eos_token_ids", None)  # mlx-lm's wrapper: a set; a transformers tokenizer: an int
    ids = {listed} if isinstance(listed, int) else set(listed or [])
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


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix: how much of a KV cache a new prompt can reuse."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


MIN_SHARED = 8  # batched prefill: a common start shorter than this is computed with each prompt (a pass of its
# own would cost more than it saves)


def common_start(rows: list[list[int]]) -> int:
    """How many tokens every row of ``rows`` starts with."""
    return min((common_prefix(rows[0], r) for r in rows), default=0)


def shared_start(bodies: list[list[int]]) -> int:
    """What a batched prefill computes once, in a one-row pass, for all of ``bodies`` (prompts less the token
    each feeds last): the tokens they all start with (a chat template's header and default system prompt), or 0
    for a single prompt or a start too short to pay for a pass of its own."""
    shared = common_start(bodies) if len(bodies) > 1 else 0
    return shared if shared >= MIN_SHARED else 0


# ----------------------------------------------------------------------------- the token loop
class Decoder(Protocol):
    def add(self, token: int) -> str:
        """Text that ``token`` completes (may be empty while a character is unfinished)."""

    def tail(self) -> str:
        """Whatever text is still held back at the end of the turn."""


class TurnStream:
    """Consumes a backend's token iterator for one assistant turn: stops, streams, times."""

    def __init__(self, stop: StopCondition, decoder: Decoder, *, on_text: Optional[Callable[[str], None]] = None,
                 should_stop: Optional[Callable[[], bool]] = None):
        self.stop, self.decoder = stop, decoder
        self.emit = on_text or (lambda s: None)
        self.should_stop = should_stop
        self.cut = StopTextFilter(stop.text)
        self.generated: list[int] = []  # every token sampled, the stop token included
        self.parts: list[str] = []
        self.finish = "length"
        self.first_at: Optional[float] = None

    def _show(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.emit(text)

    def run(self, tokens: Iterable[int]) -> None:
        for _ in self.steps(tokens):
            pass

    def steps(self, tokens: Iterable[int]) -> Iterator[None]:
        """``run``, one token at a time: yields after each token, so several turns can take turns."""
        for token in tokens:
            self.first_at = self.first_at or time.perf_counter()
            self.generated.append(token)
            if token in self.stop.token_ids:
                self.finish = "stop"
                return
            self._show(self.cut.feed(self.decoder.add(token)))
            if self.cut.hit:
                self.finish = "stop"
                return
            if self.should_stop is not None and self.should_stop():
                self.finish = "interrupted"
                return
            yield

    def answer(self, prompt: list[int], reused: int, start: float, decode: Callable[[list[int]], str]) -> Answer:
        """The finished turn; ``decode`` turns token ids into text as they are (for ``raw_text``)."""
        if not self.cut.hit:
            self._show(self.cut.feed(self.decoder.tail()) + self.cut.flush())
        end = time.perf_counter()
        gen, n = self.generated, len(self.generated)
        body = gen[:-1] if self.finish == "stop" and gen and gen[-1] in self.stop.token_ids else gen
        raw = decode(body)
        raw = raw.split(self.stop.text, 1)[0] if self.stop.text else raw
        decode_s = end - self.first_at if self.first_at else 0.0
        tps = (n - 1) / decode_s if n > 1 and decode_s > 0 else (n / (end - start) if end > start else 0.0)
        return Answer(text="".join(self.parts), tokens=n, tokens_per_sec=tps, prompt_tokens=len(prompt),
                      reused_tokens=reused, finish_reason=self.finish, elapsed_s=end - start, raw_text=raw,
                      token_ids=list(body))


AnswerStream = Generator[None, None, Answer]  # a turn being generated: next() per token, the Answer at the end


def finish(stream: AnswerStream) -> Answer:
    """Run a turn to its end."""
    while True:
        try:
            next(stream)
        except StopIteration as done:
            return done.value


def interleave(streams: dict[str, AnswerStream]) -> dict[str, Answer]:
    """Several turns a token at a time each, in turn (``chat --compare``: both answers grow together, and a
    Ctrl-C stops both at the same point); returns each one's Answer."""
    answers: dict[str, Answer] = {}
    live = dict(streams)
    while live:
        for name, stream in list(live.items()):
            try:
                next(stream)
            except StopIteration as done:
                answers[name] = done.value
                del live[name]
    return {name: answers[name] for name in streams}


# ----------------------------------------------------------------------------- batched rows
class TextDiff:
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


class BatchRow:
    """One row of a batch: a ``TurnStream`` fed a token at a time, so a row stops exactly where one-by-one
    generation (which pulls tokens through the same ``TurnStream``) would."""

    def __init__(self, stop: StopCondition, hf: Any):
        self.turn = TurnStream(stop, TextDiff(hf))
        self.live = True
        self._next = 0
        self._steps = self.turn.steps(iter(lambda: self._next, object()))  # yields whatever ``add`` set

    def add(self, token: int) -> None:
        self._next = token
        try:
            next(self._steps)
        except StopIteration:  # a stop token or the end-of-turn text
            self.live = False


def batch_answer(row: BatchRow, prompt: list[int], hf: Any, elapsed: float, total: int) -> Answer:
    """A row's Answer as one-by-one generation gives it, with the speed and time of the whole batch (its rows
    share every forward pass)."""
    answer = row.turn.answer(prompt, 0, time.perf_counter(), lambda ids: hf.decode(ids, skip_special_tokens=False))
    answer.text = answer.text.strip()
    answer.elapsed_s = elapsed
    answer.tokens_per_sec = total / elapsed if elapsed > 0 else 0.0
    return answer
