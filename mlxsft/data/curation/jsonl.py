"""Streaming JSON Lines: read rows one at a time, append output rows durably, resume an interrupted output.

    for line, row in iter_jsonl(Path("prompts.jsonl")):      # DataError naming file:line on a bad row
        ...
    with ResumableOutput(Path("out.jsonl"), key=lambda row: row["meta"]["prompt_id"]) as out:
        if "p-17" not in out.done:
            out.append([row])                                # one write, then flush and fsync

``ResumableOutput`` is how ``distill`` and ``best-of-k`` survive a crash or Ctrl-C: rows are appended as batches
finish, and reopening the file drops a half-written last line (a crash mid-write), reads back the keys already
written, and takes an exclusive lock so two processes never append to the same file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from mlxsft.errors import DataError, RunError

BOM = b"\xef\xbb\xbf"


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` for each non-blank line; a line that is not a JSON object raises a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            if not raw.strip():
                continue
            yield lineno, parse_line(raw, str(path), lineno)


def parse_line(raw: bytes, name: str, lineno: int) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})",
                        file=name, line=lineno) from None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg} at column {e.colno})", file=name, line=lineno) from None
    if not isinstance(row, dict):
        raise DataError("expected a JSON object", file=name, line=lineno)
    return row


def dumps_row(row: dict) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON; scorers turn them into None before a row gets here.
    return json.dumps(row, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"


def drop_partial_tail(fd: int) -> int:
    """Truncate an open file back to its last complete line; returns the bytes dropped (0 if none)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    cut, end = 0, size
    while end > 0:  # scan back in blocks for the last newline
        start = max(0, end - (1 << 16))
        at = os.pread(fd, end - start, start).rfind(b"\n")
        if at >= 0:
            cut = start + at + 1
            break
        end = start
    os.ftruncate(fd, cut)
    os.fsync(fd)
    return size - cut


class ResumableOutput:
    """An append-only JSONL output that knows which rows it already holds.

    ``key(row)`` names a finished unit of work (a prompt id, or prompt id and sample); ``done`` holds the keys of
    every row in the file. ``on_row(line, row)`` sees each existing row while the file is read back (to check it
    comes from the same job, or to count its scores). ``overwrite`` empties the file first.
    """

    def __init__(self, path: Path, key: Callable[[dict], Optional[str]], *, overwrite: bool = False,
                 on_row: Optional[Callable[[int, dict], None]] = None):
        self.path = Path(path)
        self.key = key
        self.overwrite = overwrite
        self.on_row = on_row
        self.done: set[str] = set()
        self.rows_before = 0  # complete rows found when opened
        self.dropped_bytes = 0  # a half-written last line removed when opened
        self.appended = 0
        self._fd: Optional[int] = None

    def __enter__(self) -> "ResumableOutput":
        import fcntl

        if self.path.is_dir():
            raise DataError("is a folder, expected a .jsonl file", file=str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunError(f"{self.path}: another mlxsft process is writing this file") from None
        self._fd = fd
        try:
            if self.overwrite:
                os.ftruncate(fd, 0)
            self.dropped_bytes = drop_partial_tail(fd)
            self._read_back()
        except BaseException:
            self.close()
            raise
        return self

    def _read_back(self) -> None:
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    row = parse_line(raw, str(self.path), lineno)
                except DataError as e:
                    raise DataError(f"{e}; the output is damaged: fix or delete that line, or pass --overwrite") \
                        from None
                if self.on_row is not None:
                    self.on_row(lineno, row)
                k = self.key(row)
                if k is not None:
                    self.done.add(k)
                self.rows_before += 1

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` in one write, then flush to disk: a crash loses at most this batch, never earlier ones."""
        if not rows:
            return
        assert self._fd is not None, "append outside of `with`"
        data = b"".join(dumps_row(r) for r in rows)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        for r in rows:
            k = self.key(r)
            if k is not None:
                self.done.add(k)
        self.appended += len(rows)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __exit__(self, *exc: Any) -> None:
        self.close()
