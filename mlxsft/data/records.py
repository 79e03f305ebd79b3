"""The records the data layer hands around: a normalised row, a tokenised example, a prepared split, a problem.

Plain dataclasses holding plain Python and numpy values, so both training backends (MLX and torch) read them
without conversion. Nothing here does work; see ``load.py`` (rows), ``prepare.py`` (examples).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlxsft.errors import DataError

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Conversation:
    """One normalised row.

    ``messages`` are ``{'role', 'content'}`` dicts (role in ``ROLES``); an assistant message may also carry
    ``reasoning`` (its thinking trace) and pass-through keys such as ``tool_calls``. A plain-text row
    (format ``text``) has no messages and sets ``text`` instead: no template, every token supervised.
    The first ``prompt_messages`` messages are context only and never supervised (prompt/completion rows
    whose prompt is a message list, which may hold earlier assistant turns).
    """

    messages: list[dict]
    tools: list | None = None
    source: str = ""  # "file:line", for error messages
    text: str | None = None
    prompt_messages: int = 0


@dataclass
class Example:
    """One tokenised row, exactly what training sees."""

    input_ids: np.ndarray  # int32 [T]
    loss_mask: np.ndarray  # int8 [T]; 1 where input_ids[t] is a supervised *target* (so loss_mask[0] is always 0)
    row: int = -1  # index of the row in its split's loaded conversations


@dataclass
class PreparedSplit:
    examples: list[Example]
    stats: dict  # rows, rows_in, dropped_overlong, truncated, no_supervised_rows, supervised_tokens, total_tokens, ...
    chat_template: str  # the exact template used; the trainer saves it in the run folder


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row, shown as ``file:line: field: what is wrong``."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        return str(self.to_error())

    def to_error(self) -> DataError:
        return DataError(self.message, file=self.file, line=self.line, field=self.field or None)


@dataclass
class RawRow:
    """A row as read from a file or the Hub, before any format is applied."""

    value: object
    file: str
    line: int | None
    problems: list[Problem] = field(default_factory=list)  # set when the row could not even be read

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file
