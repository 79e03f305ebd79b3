"""User-facing errors.

Anything a user can cause (a bad path, a malformed row, a full disk) raises an ``MlxsftError``.
The CLI prints its message as one line on stderr and exits with ``exit_code``; no traceback.
Internal bugs stay ordinary exceptions so they keep their tracebacks.
"""

from __future__ import annotations


class MlxsftError(Exception):
    """An error whose message is meant for the user, as one line."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:  # one printable line, always
        msg = " ".join(str(self.args[0]).split()) if self.args else ""
        return _printable(f"{msg} ({self.hint})" if self.hint else msg)


def _printable(text: str) -> str:
    """Escape control characters and lone surrogates (from file names or data) so the line prints anywhere."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)


class ModelError(MlxsftError):
    """A model spec cannot be resolved, converted or loaded."""


class DataError(MlxsftError):
    """A dataset problem, located as ``file:line: field: what is wrong``."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, hint: str | None = None):
        loc = ""
        if file is not None:
            loc = f"{file}:{line}: " if line is not None else f"{file}: "
        if field:
            loc += f"{field}: "
        super().__init__(loc + message, hint=hint)
        self.file, self.line, self.field = file, line, field


class SplitNotFound(DataError):
    """A dataset has no such split: for the validation split, callers go on without one."""


class ConfigError(MlxsftError):
    """A config file or flag has a bad value."""


class RunError(MlxsftError):
    """A run folder problem: locked, not empty, cannot resume."""
