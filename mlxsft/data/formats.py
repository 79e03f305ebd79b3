"""Row formats: detect, check and convert one raw row into a ``Conversation``, or say what is wrong with it.

    from mlxsft.data.formats import to_conversation
    conv, problems = to_conversation(raw_row, fmt="auto", columns={"messages": "conversation"})

Formats (``--format``, ``auto`` detects per row from its fields):
  messages           {"messages": [{"role": "user", "content": ...}, ...], "tools": [...]}
  prompt_completion  {"prompt": str | [messages], "completion": str | [messages]}
  text               {"text": str}                              (no template, every token supervised)
  sharegpt           {"conversations": [{"from": "human", "value": ...}, ...], "system": ...}
  alpaca             {"instruction": ..., "input": ..., "output": ..., "system": ...}
An assistant message's reasoning trace may be a ``reasoning`` / ``reasoning_content`` / ``thinking`` field or a
leading ``<think>...</think>`` in its content; both become the message's ``reasoning``. An assistant message with
``"weight": 0`` (OpenAI's fine-tuning format) stays in the context but is not supervised.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlxsft.data.records import ROLES, Conversation, Problem, RawRow

FORMATS = ("messages", "prompt_completion", "text", "sharegpt", "alpaca")
SHAREGPT_ROLES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "model": "assistant", "chatgpt": "assistant",
    "bard": "assistant", "bing": "assistant", "function_call": "assistant",
    "system": "system",
    "tool": "tool", "observation": "tool", "function_response": "tool", "ipython": "tool",
}
REASONING_KEYS = ("reasoning", "reasoning_content", "thinking")
THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)


class _Row:
    """Collects the problems of one row while it is converted."""

    def __init__(self, raw: RawRow):
        self.raw = raw
        self.problems: list[Problem] = []

    def bad(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.raw.file, self.raw.line, field, message))


def detect_format(row: dict) -> str | None:
    if "messages" in row:
        items = _maybe_json(row["messages"])
        if isinstance(items, list) and items and all(isinstance(m, dict) and "from" in m for m in items):
            return "sharegpt"  # ShareGPT turns stored under "messages"
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "prompt" in row or "completion" in row:
        return "prompt_completion"
    if "instruction" in row or "output" in row:
        return "alpaca"
    if "text" in row:
        return "text"
    return None


def to_conversation(raw: RawRow, fmt: str = "auto", columns: dict | None = None) -> tuple[Conversation | None, list[Problem]]:
    """Convert one raw row; on any problem return ``(None, problems)``."""
    if raw.problems:
        return None, list(raw.problems)
    r = _Row(raw)
    value = raw.value
    if not isinstance(value, dict):
        r.bad("row", f"expected an object, got {_kind(value)}")
        return None, r.problems
    row = dict(value)
    for canon, col in (columns or {}).items():
        if col in row and col != canon:
            row[canon] = row.pop(col)
    kind = detect_format(row) if fmt == "auto" else fmt
    if kind is None:
        found = ", ".join(_show(k) for k in list(row)[:8]) + (", ..." if len(row) > 8 else "")
        r.bad("row", "unknown format: expected a 'messages', 'prompt'/'completion', 'text', 'conversations' or "
                     f"'instruction'/'output' field (found {found or 'no fields'})")
        return None, r.problems
    conv = CONVERTERS[kind](r, row)
    if r.problems or conv is None:
        return None, r.problems
    _check_encodable(r, conv)
    if r.problems:
        return None, r.problems
    conv.source = raw.source
    return conv, []


def _check_encodable(r: _Row, conv: Conversation) -> None:
    """Everything downstream (cache key, tokenizer, templates) needs UTF-8 text and JSON-sized nesting."""
    try:
        json.dumps([conv.messages, conv.tools, conv.text], ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        r.bad("row", "invalid UTF-8 (a \\ud800-\\udfff escape that is half a surrogate pair)")
    except RecursionError:
        r.bad("row", "nested too deeply")


# ----------------------------------------------------------------------------------------------- the formats
def _messages(r: _Row, row: dict) -> Conversation | None:
    key = "messages"
    items = _required_list(r, row, key)
    if items is None:
        return None
    msgs, where = _convert_items(r, items, key, sharegpt=False)
    return _finish(r, row, msgs, where, key)


def _sharegpt(r: _Row, row: dict) -> Conversation | None:
    key = "conversations" if "conversations" in row or "messages" not in row else "messages"
    items = _required_list(r, row, key)
    if items is None:
        return None
    msgs, where = _convert_items(r, items, key, sharegpt=True)
    msgs, where = _with_system(r, row, msgs, where)
    return _finish(r, row, msgs, where, key)


def _prompt_completion(r: _Row, row: dict) -> Conversation | None:
    msgs: list[dict] = []
    where: list[str] = []
    n_prompt = 0
    for key, role in (("prompt", "user"), ("completion", "assistant")):
        value = _maybe_json(row.get(key))
        if value is None:
            r.bad(key, "missing")
        elif isinstance(value, str):
            if not value.strip():
                r.bad(key, "empty")
            msgs.append(_inline_reasoning({"role": role, "content": value}))
            where.append(key)
        elif isinstance(value, list):
            if not value:
                r.bad(key, "empty")
            m, w = _convert_items(r, value, key, sharegpt=False)
            msgs += m
            where += w
        else:
            r.bad(key, f"expected a string or a list of messages, got {_kind(value)}")
        if key == "prompt":
            n_prompt = len(msgs)
    full, where = _with_system(r, row, msgs, where)
    conv = _finish(r, row, full, where, "completion")
    if conv is not None and not any(m["role"] == "assistant" for m in msgs[n_prompt:]):
        r.bad("completion", "no assistant message in the completion")
        return None
    if conv is not None:
        # Only the completion is learned, even when the prompt holds earlier assistant turns.
        conv.prompt_messages = n_prompt + len(full) - len(msgs)
    return conv


def _alpaca(r: _Row, row: dict) -> Conversation | None:
    for key in ("instruction", "output"):
        _required_text(r, row, key)
    extra = row.get("input")
    if extra is not None and not isinstance(extra, str):
        r.bad("input", f"expected a string, got {_kind(extra)}")
    if r.problems:
        return None
    prompt = row["instruction"] + (f"\n\n{extra}" if isinstance(extra, str) and extra.strip() else "")
    msgs = [{"role": "user", "content": prompt}, _inline_reasoning({"role": "assistant", "content": row["output"]})]
    msgs, where = _with_system(r, row, msgs, ["instruction", "output"])
    return _finish(r, row, msgs, where, "output")


def _text(r: _Row, row: dict) -> Conversation | None:
    if _required_text(r, row, "text") is None:
        return None
    return Conversation(messages=[], text=row["text"])


CONVERTERS = {"messages": _messages, "sharegpt": _sharegpt, "prompt_completion": _prompt_completion,
              "alpaca": _alpaca, "text": _text}


# ----------------------------------------------------------------------------------------------- shared checks
def _convert_items(r: _Row, items: list, key: str, *, sharegpt: bool) -> tuple[list[dict], list[str]]:
    """Check and normalise a list of messages; ``where`` names each one's role field for later problems."""
    role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
    msgs, where = [], []
    for i, item in enumerate(items):
        at = f"{key}[{i}]"
        if not isinstance(item, dict):
            r.bad(at, f"expected an object with '{role_key}' and '{content_key}', got {_kind(item)}")
            continue
        role = item.get(role_key)
        if role is None:
            r.bad(f"{at}.{role_key}", "missing")
            continue
        if not isinstance(role, str):
            r.bad(f"{at}.{role_key}", f"expected a string, got {_kind(role)}")
            continue
        known = SHAREGPT_ROLES if sharegpt else {x: x for x in ROLES}
        if role not in known:
            r.bad(f"{at}.{role_key}", f"unknown role {_show(role)} (expected {', '.join(known)})")
            continue
        # Arrow (Parquet, Hub) fills keys a message lacks with None: drop them, as if never there.
        msg = {k: v for k, v in item.items()
               if k not in (role_key, content_key) and k not in REASONING_KEYS and v is not None}
        msg["role"] = known[role]
        content = item.get(content_key)
        reasoning = next((item[k] for k in REASONING_KEYS if item.get(k) is not None), None)
        if reasoning is not None and not isinstance(reasoning, str):
            r.bad(f"{at}.{next(k for k in REASONING_KEYS if item.get(k) is not None)}",
                  f"expected a string, got {_kind(reasoning)}")
            continue
        may_be_empty = msg["role"] == "assistant" and (item.get("tool_calls") or reasoning)
        if content is None and not may_be_empty:
            r.bad(f"{at}.{content_key}", "missing")
            continue
        if content is not None and not isinstance(content, str):
            r.bad(f"{at}.{content_key}", f"expected a string, got {_kind(content)}")
            continue
        content = content or ""
        if msg["role"] == "assistant" and reasoning is None:
            reasoning, content = _split_think(content)
        if not content.strip() and not may_be_empty and not (reasoning and msg["role"] == "assistant"):
            r.bad(f"{at}.{content_key}", "empty")
            continue
        msg["content"] = content
        if reasoning is not None:
            if msg["role"] != "assistant":
                r.bad(f"{at}.reasoning", f"only assistant messages carry reasoning, not {msg['role']}")
                continue
            msg["reasoning"] = reasoning
        msgs.append(msg)
        where.append(f"{at}.{role_key}")
    return msgs, where


def _split_think(content: str) -> tuple[str | None, str]:
    """A leading ``<think>...</think>`` is the reasoning trace; the rest is the answer."""
    m = THINK.match(content)
    return (m.group(1).strip("\n"), content[m.end():]) if m else (None, content)


def _inline_reasoning(msg: dict) -> dict:
    if msg["role"] == "assistant":
        reasoning, msg["content"] = _split_think(msg["content"])
        if reasoning is not None:
            msg["reasoning"] = reasoning
    return msg


def _with_system(r: _Row, row: dict, msgs: list[dict], where: list[str]) -> tuple[list[dict], list[str]]:
    """Prepend a row-level ``system`` field as a system message (it is a system prompt, never a user turn)."""
    system = row.get("system")
    if system is None or system == "":
        return msgs, where
    if not isinstance(system, str):
        r.bad("system", f"expected a string, got {_kind(system)}")
        return msgs, where
    return [{"role": "system", "content": system}] + msgs, ["system"] + where


def _finish(r: _Row, row: dict, msgs: list[dict], where: list[str], key: str) -> Conversation | None:
    """Order checks and tools, once every message is individually fine."""
    tools = _tools(r, row)
    if r.problems:
        return None
    seen_user = False
    for m, at in zip(msgs, where):
        if m["role"] == "user":
            seen_user = True
        elif m["role"] == "assistant" and not seen_user:
            r.bad(at, "assistant turn before any user turn")
            return None
    if not any(m["role"] == "assistant" for m in msgs):
        r.bad(key, "no assistant turn to learn from")
        return None
    return Conversation(messages=msgs, tools=tools)


def _tools(r: _Row, row: dict) -> list | None:
    tools = _maybe_json(row.get("tools"))
    if tools is None or tools == "" or tools == []:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        r.bad("tools", f"expected a list of tool schemas (objects), got {_kind(tools)}")
        return None
    return tools


def _required_list(r: _Row, row: dict, key: str) -> list | None:
    value = _maybe_json(row.get(key))
    if value is None:
        r.bad(key, "missing")
    elif not isinstance(value, list):
        r.bad(key, f"expected a list of messages, got {_kind(value)}")
    elif not value:
        r.bad(key, "empty")
    else:
        return value
    return None


def _required_text(r: _Row, row: dict, key: str) -> str | None:
    value = row.get(key)
    if value is None:
        r.bad(key, "missing")
    elif not isinstance(value, str):
        r.bad(key, f"expected a string, got {_kind(value)}")
    elif not value.strip():
        r.bad(key, "empty")
    else:
        return value
    return None


def _maybe_json(value: Any) -> Any:
    """CSV cells and some Hub datasets hold message lists as JSON strings."""
    if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):  # not JSON, too deep, or a number too long: a plain string
            return value
        if isinstance(parsed, list) and parsed and all(isinstance(x, dict) for x in parsed):
            return parsed
    return value


def _show(value: Any, limit: int = 40) -> str:
    """A user's value inside a message: quoted, escaped (no control characters) and cut to ``limit`` characters."""
    text = str(value)
    return repr(text[:limit] + "...") if len(text) > limit else repr(text)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
