"""The ``mlxsft chat`` session: multi-turn history, slash commands, KV-cache reuse, transcripts. UI-free.

    session = open_session(ChatOptions(model=None, adapter="runs/sft-20261129-0712", compare=True))
    turn = session.ask("What is 2+2?", on_text=lambda name, piece: ...)
    result = session.command("/save chat.jsonl")

Each model ("base", "tuned") keeps its own conversation and its own generator, whose KV cache holds
the conversation so far: a new turn only prefills the new user message. The primary model is "tuned"
with ``--adapter``, else "base"; ``/compare on`` adds the base model, starting from the primary's
history. ``/save`` writes the primary's conversations (one per ``/reset``) as ``{"messages": [...]}``
JSONL rows, the format ``mlxsft train --data`` reads.

A backend provides ``load_views(spec, adapter, fine_tune_type=, load_kwargs=, progress=)``,
``CachedGenerator``, ``Sampling``, ``stop_condition``, ``render_prompt`` and ``seed``
(``mlxsft/backends/mlx/generate.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from mlxsft.errors import ConfigError, MlxsftError

HELP = {
    "/reset": "start a new conversation (the old one stays in the transcript)",
    "/system TEXT": "set the system prompt (no TEXT: remove it)",
    "/compare on|off": "answer with the base and the tuned model side by side",
    "/save FILE": "write the conversations as JSONL messages rows (loads as training data)",
    "/help": "this list",
    "/quit": "leave (or Ctrl-D); Ctrl-C stops the current answer",
}


@dataclass
class ChatOptions:
    model: Optional[str] = None
    adapter: Optional[str] = None
    compare: bool = False
    system: Optional[str] = None
    temp: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    backend: Optional[str] = None  # mlx | torch; default: the run's backend, else mlx


@dataclass
class Turn:
    prompt: str
    answers: dict[str, Any]  # model name -> Answer

    @property
    def interrupted(self) -> bool:
        return any(a.finish_reason == "interrupted" for a in self.answers.values())

    def to_json(self) -> dict[str, Any]:
        """One ``--json`` line: prompt, answers and token counts per model."""
        a = self.answers
        return {"prompt": self.prompt,
                "answers": {m: x.text for m, x in a.items()},
                "tokens": {m: x.tokens for m, x in a.items()},
                "prompt_tokens": {m: x.prompt_tokens for m, x in a.items()},
                "reused_tokens": {m: x.reused_tokens for m, x in a.items()},
                "tokens_per_sec": {m: round(x.tokens_per_sec, 2) for m, x in a.items()},
                "finish_reason": {m: x.finish_reason for m, x in a.items()}}


@dataclass
class CommandResult:
    message: str = ""
    quit: bool = False
    error: bool = False


def parse_command(line: str) -> Optional[tuple[str, str]]:
    """``/name rest`` -> (name, rest); None when the line is a prompt."""
    text = line.strip()
    if not text.startswith("/") or text.startswith("//"):
        return None
    name, _, rest = text.partition(" ")
    return name.lower(), rest.strip()


def prompt_text(line: str) -> str:
    """A prompt line as the user meant it: ``//text`` sends ``/text``."""
    text = line.strip()
    return text[1:] if text.startswith("//") else text


@dataclass
class ChatSession:
    generators: dict[str, Any]  # name -> CachedGenerator
    tokenizer: Any
    template: str
    template_kwargs: dict
    stop: Any  # StopCondition
    sampling: Any  # Sampling
    backend: Any  # the backend module (render_prompt)
    system: Optional[str] = None
    compare: bool = False
    label: str = ""  # what is loaded, for a banner
    history: dict[str, list[dict]] = field(default_factory=dict)  # name -> user/assistant messages
    finished: list[list[dict]] = field(default_factory=list)  # the primary's conversations closed by /reset
    finished_others: dict[str, list[list[dict]]] = field(default_factory=dict)  # the other model's (--compare)

    def __post_init__(self) -> None:
        self.history.setdefault(self.primary, [])

    @property
    def primary(self) -> str:
        return "tuned" if "tuned" in self.generators else "base"

    @property
    def can_compare(self) -> bool:
        return len(self.generators) > 1

    @property
    def active(self) -> list[str]:
        return ["base", "tuned"] if self.compare and self.can_compare else [self.primary]

    def messages(self, name: Optional[str] = None) -> list[dict]:
        sys_msg = [{"role": "system", "content": self.system}] if self.system else []
        return sys_msg + self.history.get(name or self.primary, [])

    # ----------------------------------------------------------------- turns
    def ask(self, prompt: str, on_text: Optional[Callable[[str, str], None]] = None,
            should_stop: Optional[Callable[[], bool]] = None) -> Turn:
        """Every active model answers ``prompt``, a token each in turn (with ``--compare`` both answers grow
        together); a stop request ends every answer at the same point, so both histories stay in step."""
        from mlxsft.backends.generation import hf_tokenizer, interleave

        hf = hf_tokenizer(self.tokenizer)
        user = {"role": "user", "content": prompt}
        streams = {}
        for name in self.active:
            if name not in self.history:  # joined mid-conversation: continue from the primary's
                self.history[name] = [dict(m) for m in self.history[self.primary]]
            ids = self.backend.render_prompt(hf, self.messages(name) + [user], self.template, self.template_kwargs)
            emit = (lambda piece, n=name: on_text(n, piece)) if on_text else None
            streams[name] = self.generators[name].stream(ids, self.sampling, self.stop, on_text=emit,
                                                         should_stop=should_stop)
        answers = interleave(streams)
        for name, answer in answers.items():
            # the history keeps the tokens' text as generated (a streamed answer may drop a leading space),
            # so the next turn re-tokenizes to what the KV cache holds
            self.history[name] += [dict(user), {"role": "assistant", "content": answer.raw_text or answer.text}]
            answer.text = answer.text.strip()
        return Turn(prompt=prompt, answers=answers)

    def reset(self) -> None:
        convo = self.conversation()
        if convo:
            self.finished.append(convo)
        for name in self.history:
            if name != self.primary and self.conversation(name):
                self.finished_others.setdefault(name, []).append(self.conversation(name))
        self.history = {self.primary: []}
        for gen in self.generators.values():
            gen.reset()

    # ----------------------------------------------------------------- transcript
    def conversation(self, name: Optional[str] = None) -> list[dict]:
        """A model's conversation (default: the primary's) as training rows want it: turns with an empty
        answer left out."""
        msgs, out = self.history.get(name or self.primary, []), []
        for user, reply in zip(msgs[0::2], msgs[1::2]):
            if reply["content"].strip():
                out += [dict(user), {"role": "assistant", "content": reply["content"].strip()}]
        if not out:
            return []
        return ([{"role": "system", "content": self.system}] if self.system else []) + out

    def transcript(self, name: Optional[str] = None) -> list[dict]:
        name = name or self.primary
        finished = self.finished if name == self.primary else self.finished_others.get(name, [])
        rows = finished + ([self.conversation(name)] if self.conversation(name) else [])
        return [{"messages": convo} for convo in rows]

    def save(self, path: str | Path) -> dict[str, tuple[Path, int]]:
        """The primary's conversations to ``path``; with --compare the other model's too, to ``PATH.NAME.jsonl``
        beside it (``chat.jsonl`` -> ``chat.base.jsonl``). Returns {model: (file, conversations)}."""
        from mlxsft.files import atomic_write_text

        path = Path(path).expanduser()
        if path.parent and not path.parent.is_dir():
            raise MlxsftError(f"{path.parent}: folder not found")
        written = {}
        others = {n for n in self.history if n != self.primary and self.history[n]} | set(self.finished_others)
        for name in [self.primary] + sorted(others):
            target = path if name == self.primary else path.with_name(f"{path.stem}.{name}{path.suffix or '.jsonl'}")
            rows = self.transcript(name)
            atomic_write_text(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            written[name] = (target, len(rows))
        return written

    # ----------------------------------------------------------------- commands
    def command(self, line: str) -> CommandResult:
        parsed = parse_command(line)
        if parsed is None:
            return CommandResult("not a command", error=True)
        name, arg = parsed
        if name in ("/quit", "/exit", "/q"):
            return CommandResult(quit=True)
        if name in ("/help", "/h", "/?"):
            return CommandResult("\n".join(f"{k:<18} {v}" for k, v in HELP.items()))
        if name == "/reset":
            self.reset()
            return CommandResult("new conversation")
        if name == "/system":
            self.system = arg or None
            return CommandResult(f"system prompt: {arg}" if arg else "system prompt removed")
        if name == "/compare":
            return self._compare(arg)
        if name == "/save":
            if not arg:
                return CommandResult("usage: /save FILE", error=True)
            try:
                written = self.save(arg)
            except (MlxsftError, OSError) as e:
                return CommandResult(f"cannot save: {e}", error=True)
            parts = [f"{n} conversation{'s' if n != 1 else ''} of {name} to {path}" for name, (path, n) in written.items()]
            return CommandResult("saved " + " and ".join(parts) if len(parts) > 1 else
                                 f"saved {written[self.primary][1]} conversation{'s' if written[self.primary][1] != 1 else ''} to {arg}")
        return CommandResult(f"unknown command {name} (type /help)", error=True)

    def _compare(self, arg: str) -> CommandResult:
        if arg.lower() not in ("on", "off"):
            return CommandResult(f"compare is {'on' if self.compare else 'off'} (usage: /compare on|off)")
        if arg.lower() == "on" and not self.can_compare:
            return CommandResult("compare needs a tuned model: start with --adapter RUN", error=True)
        self.compare = arg.lower() == "on"
        if not self.compare:  # the base's side conversation ends; it restarts from the primary's
            for name in [n for n in self.history if n != self.primary]:
                del self.history[name]
                self.generators[name].reset()
        return CommandResult(f"compare {'on: base and tuned answer' if self.compare else 'off'}")


# ----------------------------------------------------------------------------- loading
def open_session(opts: ChatOptions, progress: Optional[Callable[[str, float], None]] = None) -> ChatSession:
    """Resolve model and run, load the models, and build the session."""
    from mlxsft.backends import registry
    from mlxsft.backends.generation import hf_tokenizer
    from mlxsft.target import chat_template, resolve_target

    if opts.max_tokens < 1:
        raise ConfigError("max_tokens: must be >= 1")
    if not (0.0 < opts.top_p <= 1.0) or opts.temp < 0:
        raise ConfigError("top_p must be in (0, 1] and temp >= 0")
    if opts.compare and not opts.adapter:
        raise ConfigError("--compare needs --adapter RUN (the tuned model to compare with its base)")
    target = resolve_target(opts.model, opts.adapter, opts.backend)
    backend = registry.part(opts.backend or target.backend or "mlx", "generate")
    tokenizer, views = backend.load_views(target.model, target.adapter, fine_tune_type=target.fine_tune_type,
                                          load_kwargs=target.load_kwargs, progress=progress)
    template = chat_template(target, hf_tokenizer(tokenizer))
    backend.seed(opts.seed)
    return ChatSession(
        generators={name: backend.CachedGenerator(view, tokenizer) for name, view in views.items()},
        tokenizer=tokenizer, template=template, template_kwargs=target.template_kwargs,
        stop=backend.stop_condition(tokenizer, template, target.template_kwargs),
        sampling=backend.Sampling(temp=opts.temp, top_p=opts.top_p, max_tokens=opts.max_tokens),
        backend=backend, system=opts.system, compare=opts.compare,
        label=f"{target.model}" + (f" + {target.adapter}" if target.adapter else ""))
