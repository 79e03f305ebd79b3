"""Chat templates: pick the one to use, and render a conversation with it (through ``apply_chat_template``).

    from mlxsft.data.templates import resolve_chat_template, TemplateRenderer
    template = resolve_chat_template(tokenizer, None)          # the tokenizer's own, or base_template's
    text = TemplateRenderer(tokenizer, template, {"enable_thinking": False}).render(messages, tools=None)

The renderer is the one place where normalised messages meet a template, so training, ``data inspect`` and the
masks all see the same text: reasoning goes into ``reasoning_content`` (or ``thinking``) for templates that read
it, and inline as ``<think>...</think>`` before the answer for the others; tools and ``chat_template_kwargs``
are passed through to the template.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any

from mlxsft.errors import DataError

# For tokenizers without a template (base models such as gemma3-270m) whose vocabulary has no turn tokens of its
# own. A BOS token goes first when the model has one (Gemma and Llama base models degrade badly without it),
# unless BOS *is* <|im_start|> (SmolLM2).
DEFAULT_CHATML = (
    "{%- if bos_token and bos_token != '<|im_start|>' %}{{ bos_token }}{% endif %}"
    "{%- set loop_messages = messages %}"
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{{- messages[0]['content'] + '\\n\\n' }}{%- set loop_messages = messages[1:] %}"
    "{%- endif %}"
    "{{- 'You can call these tools:\\n' + (tools | tojson) + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in loop_messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] }}"
    "{%- if message.tool_calls %}{{ message.tool_calls | tojson }}{% endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Gemma's own turn format (as in Gemma 3's instruct template): the assistant is "model", a system message is
# folded into the first user turn, <end_of_turn> (one special token) closes every turn.
GEMMA_TEMPLATE = (
    "{{- bos_token if bos_token else '' }}"
    "{%- set loop_messages = messages %}{%- set first_prefix = '' %}"
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{%- set first_prefix = messages[0]['content'] + '\\n\\n' %}{%- set loop_messages = messages[1:] %}"
    "{%- endif %}"
    "{%- if tools %}{%- set first_prefix = first_prefix + 'You can call these tools:\\n' + (tools | tojson) + '\\n\\n' %}"
    "{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\\n' + (first_prefix if loop.first else '') + message['content'] }}"
    "{%- if message.tool_calls %}{{ message.tool_calls | tojson }}{% endif %}"
    "{{- '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

# Llama 3's header format: <|start_header_id|>role<|end_header_id|>, each turn closed by <|eot_id|>.
LLAMA3_TEMPLATE = (
    "{{- bos_token if bos_token else '' }}"
    "{%- set loop_messages = messages %}"
    "{%- if tools %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{{- messages[0]['content'] + '\\n\\n' }}{%- set loop_messages = messages[1:] %}"
    "{%- endif %}"
    "{{- 'You can call these tools:\\n' + (tools | tojson) + '<|eot_id|>' }}"
    "{%- endif %}"
    "{%- for message in loop_messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] }}"
    "{%- if message.tool_calls %}{{ message.tool_calls | tojson }}{% endif %}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

# A template-less tokenizer gets the first family whose turn markers are each one token of its vocabulary, so
# the tuned model learns a one-token stop that llama.cpp and Ollama can stop on; ChatML spelled in ordinary
# tokens (six for <|im_end|> in Gemma's vocabulary) is the fallback.
FAMILY_TEMPLATES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("gemma", ("<start_of_turn>", "<end_of_turn>"), GEMMA_TEMPLATE),
    ("llama3", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), LLAMA3_TEMPLATE),
    ("chatml", ("<|im_start|>", "<|im_end|>"), DEFAULT_CHATML),
)


def _single_token(tokenizer: Any, text: str) -> bool:
    try:
        return len(tokenizer.encode(text, add_special_tokens=False)) == 1
    except Exception:  # a tokenizer that cannot encode (a test double) has no turn tokens we can rely on
        return False


def base_template(tokenizer: Any) -> tuple[str, str]:
    """(family, template) for a tokenizer without a chat template of its own."""
    for family, markers, template in FAMILY_TEMPLATES:
        if all(_single_token(tokenizer, m) for m in markers):
            return family, template
    return "chatml", DEFAULT_CHATML


_THINKING_FIELD = re.compile(r"""message(\.|\[['"])thinking""")


def resolve_chat_template(tokenizer: Any, override_path: str | None) -> str:
    """The template to train with: a ``.jinja`` file if given, else the tokenizer's own, else one built on the
    vocabulary's own turn tokens (``base_template``)."""
    if override_path:
        path = Path(override_path).expanduser()
        if not path.is_file():
            raise DataError("chat template file not found", file=str(path))
        text = path.read_text(encoding="utf-8")
        check_template(text, str(path))
        return text
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: the default one
        template = template.get("default") or next(iter(template.values()), None)
    return template or base_template(tokenizer)[1]


def check_template(text: str, name: str = "chat template") -> None:
    import jinja2

    try:
        jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError as e:
        raise DataError(f"invalid Jinja template ({e.message})", file=name, line=e.lineno) from None


def reasoning_field(template: str) -> str | None:
    """The message field this template reads reasoning from, or None: then reasoning goes inline in the content."""
    if "reasoning_content" in template:
        return "reasoning_content"
    if _THINKING_FIELD.search(template):
        return "thinking"  # gpt-oss
    return None


class TemplateRenderer:
    """Renders normalised messages with one template, tokenizer and set of template kwargs."""

    def __init__(self, tokenizer: Any, template: str, template_kwargs: dict | None = None):
        self.tokenizer = tokenizer
        self.template = template
        self.kwargs = dict(template_kwargs or {})
        self.field = reasoning_field(template)

    def messages(self, messages: list[dict]) -> list[dict]:
        """What the template sees: reasoning placed the way it expects, our own keys removed."""
        out = []
        for m in messages:
            msg = {k: v for k, v in m.items() if k not in ("reasoning", "weight")}
            reasoning = m.get("reasoning")
            if reasoning is not None:
                if self.field:
                    msg[self.field] = reasoning
                else:
                    msg["content"] = f"<think>\n{reasoning}\n</think>\n\n{msg['content']}"
            out.append(msg)
        return out

    def render(self, messages: list[dict], tools: list | None = None, add_generation_prompt: bool = False) -> str:
        """Render already-converted messages (see ``messages``)."""
        return self.tokenizer.apply_chat_template(messages, tools=tools, chat_template=self.template, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt, **self.kwargs)

    @cached_property
    def end_of_turn(self) -> str:
        """What the template writes right after an assistant message's content (``<|im_end|>``, ``<|eot_id|>``)."""
        probe = [{"role": "user", "content": "Ping?"}, {"role": "assistant", "content": "Pong!"}]
        try:
            text = self.render(probe)
        except Exception:  # a template that cannot render the probe simply has no known end-of-turn text
            return ""
        at = text.rfind("Pong!")
        return text[at + len("Pong!"):].strip() if at >= 0 else ""
