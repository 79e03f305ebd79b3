"""The Ollama ``Modelfile`` written beside an exported GGUF.

    text, warnings = modelfile("my-run-f16.gguf", hf_tokenizer, template, stops, name="my-run")
    # ollama create my-run -f Modelfile && ollama run my-run
    text, warnings = modelfile("base.gguf", ..., adapter="my-run-lora-f32.gguf")   # FROM base + ADAPTER

Ollama does not run Jinja chat templates: a Modelfile ``TEMPLATE`` is a Go template. The run's template is
matched to a family (ChatML, Llama 3, Gemma) whose turn markers are known, and the match is *checked*: a
sample conversation rendered by the real Jinja template (transformers ``apply_chat_template``) must equal
the same conversation assembled from the family's markers, BOS aside (llama.cpp adds it from the GGUF's
``add_bos_token``). A default system prompt the template injects (SmolLM2 does) becomes ``SYSTEM``.
``PARAMETER stop`` lines name the end-of-turn text and the EOS tokens, so the model stops where it was
trained to stop.

Documented fallback: a template of no known family, or one that fails the check, gets no ``TEMPLATE`` line;
Ollama then picks a template from the GGUF's ``tokenizer.chat_template`` itself. The export reports it.

Quoting: Ollama's Modelfile parser (``parser/parser.go``) has no escapes. A value in triple quotes ends at the
first line end where the text so far, trailing blanks aside, ends in three quotes; a value in single double
quotes likewise at the first line end after a quote; characters that are not printable (other than tab, CR
and LF) are dropped. ``modelfile_string`` picks the form that reads back as exactly the text, or returns None
when none does (a line of the text ending in three quotes, for instance): that ``SYSTEM`` or ``stop`` is then
left out, with a warning, rather than written so that it ends early and the rest of the text becomes
Modelfile commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from mlxsft.export.stops import Stops

SAMPLE = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello."},
          {"role": "user", "content": "What is 2+2?"}]
SAMPLE_SYSTEM = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]


@dataclass(frozen=True)
class Family:
    """The literal text around each role's content in one template family."""

    name: str
    marker: str  # a string whose presence in a Jinja template points at this family
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation: str  # what a prompt ends with, so the model writes the assistant turn
    system: Optional[tuple[str, str]] = None  # None: the family has no system turn of its own

    def assemble(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        out = []
        for m in messages:
            prefix, suffix = {"system": self.system, "user": self.user, "assistant": self.assistant}[m["role"]]
            out.append(prefix + m["content"] + suffix)
        return "".join(out) + (self.generation if add_generation_prompt else "")

    def go_template(self) -> str:
        """The Ollama TEMPLATE. No ``{{-`` / ``-}}``: trimming would eat the newlines inside the markers."""
        system = self.system or self.user  # no system turn: a system message is shown as a user turn
        return ("{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
                f'{{{{ if eq .Role "system" }}}}{system[0]}{{{{ .Content }}}}{system[1]}'
                f'{{{{ else if eq .Role "user" }}}}{self.user[0]}{{{{ .Content }}}}{self.user[1]}'
                f'{{{{ else if eq .Role "assistant" }}}}{self.assistant[0]}{{{{ .Content }}}}'
                f"{{{{ if not $last }}}}{self.assistant[1]}{{{{ end }}}}{{{{ end }}}}"
                f'{{{{ if and $last (ne .Role "assistant") }}}}{self.generation}{{{{ end }}}}{{{{ end }}}}')


FAMILIES = (
    Family("chatml", "<|im_start|>", user=("<|im_start|>user\n", "<|im_end|>\n"),
           assistant=("<|im_start|>assistant\n", "<|im_end|>\n"), generation="<|im_start|>assistant\n",
           system=("<|im_start|>system\n", "<|im_end|>\n")),
    Family("llama3", "<|start_header_id|>", user=("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
           assistant=("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
           generation="<|start_header_id|>assistant<|end_header_id|>\n\n",
           system=("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>")),
    Family("gemma", "<start_of_turn>", user=("<start_of_turn>user\n", "<end_of_turn>\n"),
           assistant=("<start_of_turn>model\n", "<end_of_turn>\n"), generation="<start_of_turn>model\n"),
)


@dataclass(frozen=True)
class Translation:
    family: Optional[Family]  # None: no TEMPLATE (fallback)
    default_system: Optional[str]  # what the template injects when a chat has no system message
    problem: str = ""  # why there is no TEMPLATE, for the user


def translate(hf_tokenizer: Any, template: str, template_kwargs: Optional[dict] = None) -> Translation:
    """Find the family of ``template`` and check it renders a sample conversation identically."""
    family = next((f for f in FAMILIES if f.marker in template), None)
    if family is None:
        return Translation(None, None, "the chat template is not ChatML, Llama 3 or Gemma")
    render = _renderer(hf_tokenizer, template, template_kwargs)
    try:
        alone = render([{"role": "user", "content": "Hi there"}])
        default_system = _default_system(family, alone)
        prefix = [{"role": "system", "content": default_system}] if default_system is not None else []
        ok = render(SAMPLE) == family.assemble(prefix + SAMPLE)
        if ok and family.system is not None:
            ok = render(SAMPLE_SYSTEM) == family.assemble(SAMPLE_SYSTEM)
    except Exception as e:  # a template that cannot render the sample: same fallback, with the reason
        return Translation(None, None, f"the chat template failed on a sample conversation ({e})")
    if not ok:
        return Translation(None, None, f"the chat template renders differently from plain {family.name} turns")
    return Translation(family, default_system)


def _renderer(hf_tokenizer: Any, template: str, template_kwargs: Optional[dict]):
    bos = getattr(hf_tokenizer, "bos_token", None) or ""
    # a tokenizer that adds BOS by itself has add_bos_token in its GGUF: llama.cpp adds it, not the TEMPLATE
    adds_bos = bool(bos) and hf_tokenizer.encode("a")[:1] == [hf_tokenizer.bos_token_id]

    def render(messages: list[dict]) -> str:
        text = hf_tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                add_generation_prompt=True, **(template_kwargs or {}))
        return text[len(bos):] if adds_bos and text.startswith(bos) else text

    return render


def _default_system(family: Family, rendered: str) -> Optional[str]:
    if family.system is None or not rendered.startswith(family.system[0]):
        return None
    body = rendered[len(family.system[0]):]
    end = body.find(family.system[1])
    return body[:end] if end >= 0 else None


def modelfile(gguf_name: str, hf_tokenizer: Any, template: str, stops: Stops, *, name: str,
              template_kwargs: Optional[dict] = None, adapter: Optional[str] = None,
              notes: Sequence[str] = ()) -> tuple[str, list[str]]:
    """(Modelfile text, warnings). ``adapter``: a GGUF LoRA file beside the Modelfile (``ADAPTER``), applied
    to ``gguf_name``, then the base model's GGUF; ``notes``: comment lines above ``FROM``."""
    tr = translate(hf_tokenizer, template, template_kwargs)
    what = f"the LoRA adapter {adapter} on its base model" if adapter else name
    lines = [f"# Ollama Modelfile for {what}, written by mlxsft export.",
             *[f"# {line}" for note in notes for line in note.splitlines()],
             f"#   ollama create {name.lower()} -f Modelfile && ollama run {name.lower()}",
             f"FROM ./{gguf_name}", *([f"ADAPTER ./{adapter}"] if adapter else []), ""]
    warnings: list[str] = []
    template = modelfile_string(tr.family.go_template()) if tr.family is not None else None
    if template is not None:
        lines += [f"# {tr.family.name} turns, checked against the run's chat template", f"TEMPLATE {template}", ""]
        if tr.default_system:
            system = modelfile_string(tr.default_system)
            if system is not None:
                lines += [f"SYSTEM {system}", ""]
            else:
                lines += ["# No SYSTEM: the template's default system prompt cannot be quoted in a Modelfile", ""]
                warnings.append("Modelfile has no SYSTEM: the chat template's default system prompt cannot be quoted "
                                'in a Modelfile (a line ending in """, or an unprintable character); '
                                "give it to Ollama at run time (/set system)")
    else:
        problem = tr.problem or "the template's markers cannot be quoted in a Modelfile"
        lines += [f"# No TEMPLATE: {problem}; Ollama derives one from the GGUF's tokenizer.chat_template", ""]
        warnings.append(f"Modelfile has no TEMPLATE: {problem}")
    for text in stops.strings:
        quoted = modelfile_string(text, block=False)
        if quoted is None:
            warnings.append(f"Modelfile has no stop {text!r}: it cannot be quoted in a Modelfile")
        else:
            lines.append(f"PARAMETER stop {quoted}")
    return "\n".join(lines).rstrip() + "\n", warnings


def modelfile_string(text: str, *, block: bool = True) -> Optional[str]:
    """``text`` as a Modelfile value that Ollama reads back as exactly ``text``, or None if there is none.
    ``block``: the triple-quoted form even for one line (as for TEMPLATE and SYSTEM)."""
    if not text or any(not (c.isprintable() or c in "\t\r\n") for c in text):
        return None
    if "\n" not in text and "\r" not in text:  # one line: the value ends at our closing quote(s)
        return f'"{text}"' if not block and not f'"{text}"'.startswith('"""') else f'"""{text}"""'
    # every line end inside the text is a place where the parser checks whether the value is complete
    for i, c in enumerate(text):
        if c in "\r\n" and text[:i].rstrip(" \t\r\n").endswith('"""'):
            return None
    return f'"""{text}"""'
