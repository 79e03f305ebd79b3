"""Prompt rows for ``distill`` and ``best-of-k``: what to ask, the optional reference answer, a stable id.

    for p in read_prompts(Path("prompts.jsonl"), system="Be brief."):
        p.messages        # [{"role": "system", ...}, {"role": "user", "content": "What is 2+3?"}]
        p.reference       # "5" or None
        p.id              # the row's "id", else a hash of the messages

A prompt row is JSON with one of
  ``prompt`` or ``question``   a string (``prompt`` may also be a list of messages)
  ``instruction`` (+ ``input``) Alpaca style
  ``messages``                 a conversation ending in a user turn; a final assistant turn is dropped and, as in
                               ``mlxsft eval``, becomes the reference when the row has none
and optionally ``system`` (a system prompt; ``--system`` applies to rows without one), ``reference`` (or
``answer``: what the ``reference`` scorer compares with) and ``id``. Other fields are ignored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from mlxsft.curate.jsonl import iter_jsonl
from mlxsft.errors import DataError

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class PromptRow:
    id: str
    messages: list[dict]  # ends with a user turn
    reference: Optional[str]
    file: str
    line: int
    row: dict  # the raw row, for ``python:`` scorers

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def text(self) -> str:
        """The last user turn: what a judge is shown as the question."""
        return self.messages[-1]["content"]


def prompt_id(messages: list[dict]) -> str:
    """A stable id from the prompt's content, for rows without an ``id``."""
    blob = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


def read_prompts(path: Path, *, system: Optional[str] = None) -> Iterator[PromptRow]:
    """Each prompt row of a JSONL file, in order; the first bad row raises a DataError naming its line."""
    for line, row in iter_jsonl(path):
        yield to_prompt(row, str(path), line, system)


def unique_prompts(path: Path, on_duplicate: Callable[[], None], *, system: Optional[str] = None) -> Iterator[PromptRow]:
    """``read_prompts`` without repeats: a prompt id seen before is skipped, and ``on_duplicate()`` counts it."""
    seen: set[str] = set()
    for p in read_prompts(path, system=system):
        if p.id in seen:
            on_duplicate()
            continue
        seen.add(p.id)
        yield p


def check_prompts(path: Path, *, system: Optional[str] = None, need_reference: bool = False) -> int:
    """Read every row once before any generation starts; returns how many there are."""
    n = 0
    for p in read_prompts(path, system=system):
        if need_reference and p.reference is None:
            raise DataError("missing: the reference scorer needs each prompt's expected answer",
                            file=p.file, line=p.line, field="reference")
        n += 1
    if n == 0:
        raise DataError("no prompts", file=str(path))
    return n


def to_prompt(row: dict, file: str, line: int, system: Optional[str] = None) -> PromptRow:
    def bad(field: str, message: str) -> DataError:
        return DataError(message, file=file, line=line, field=field)

    reference = row.get("reference", row.get("answer"))
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        reference = str(reference)
    if reference is not None and not isinstance(reference, str):
        raise bad("reference", "expected a string or a number")

    if "messages" in row or isinstance(row.get("prompt"), list):
        key = "messages" if "messages" in row else "prompt"
        messages = _messages(row[key], key, bad)
        if messages and messages[-1]["role"] == "assistant":
            last = messages.pop()
            if reference is None and key == "messages":
                reference = last["content"]
    else:
        key = next((k for k in ("prompt", "question", "instruction") if k in row), None)
        if key is None:
            raise bad("row", "expected a 'prompt', 'question', 'instruction' or 'messages' field "
                             f"(found {', '.join(map(repr, row)) or 'no fields'})")
        text = row[key]
        if not isinstance(text, str):
            raise bad(key, "expected a string")
        extra = row.get("input") if key == "instruction" else None
        if isinstance(extra, str) and extra.strip():
            text = f"{text}\n\n{extra}"
        messages = [{"role": "user", "content": text}]
    if not messages or messages[-1]["role"] != "user":
        raise bad(key, "the prompt must end with a user turn")
    if not messages[-1]["content"].strip():
        raise bad(key, "empty prompt")

    row_system = row.get("system")
    if row_system is not None and not isinstance(row_system, str):
        raise bad("system", "expected a string")
    system_text = row_system or system
    if system_text and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_text}] + messages

    rid = row.get("id")
    if rid is not None and not isinstance(rid, (str, int)):
        raise bad("id", "expected a string or a number")
    return PromptRow(id=str(rid) if rid is not None else prompt_id(messages), messages=messages,
                     reference=reference, file=file, line=line, row=row)


def _messages(items: object, key: str, bad) -> list[dict]:
    if not isinstance(items, list) or not items:
        raise bad(key, "expected a non-empty list of messages")
    out = []
    for i, m in enumerate(items):
        at = f"{key}[{i}]"
        if not isinstance(m, dict):
            raise bad(at, "expected an object with 'role' and 'content'")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise bad(f"{at}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise bad(f"{at}.content", "expected a string")
        out.append({"role": role, "content": content})
    return out
