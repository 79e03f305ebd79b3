"""Chat templates: pick the one to use, and render a conversation with it (through ``apply_chat_template``).

    from mlxsft.data.templates import resolve_chat_template, TemplateRenderer
    template = resolve_chat_template(tokenizer, None)          # the tokenizer's own, or DEFAULT_CHATML
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

# For tokenizers without a template (base models such as gemma3-270m). A BOS token goes first when the model
# has one (Gemma and Llama base models degrade badly without it), unless BOS *is* <|im_start|> (SmolLM2).
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

_THINKING_FIELD = re.compile(r"""message(\.|\[['"])thinking""")


def resolve_chat_template(tokenizer: Any, override_path: str | None) -> str:
    """The template to train with: a ``.jinja`` file if given, else the tokenizer's own, else ChatML."""
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
    return template or DEFAULT_CHATML


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
