"""Streaming JSON Lines: read rows one at a time, append output rows durably, resume an interrupted output.

    for line, row in iter_jsonl(Path("prompts.jsonl")):      # DataError naming file:line on a bad row
        ...
    with ResumableOutput(Path("out.jsonl"), key=lambda row: row["meta"]["prompt_id"]) as out:
        if "p-17" not in out.done:
            out.append([row])                                # one write, then flush and fsync

``ResumableOutput`` is how ``distill`` and ``best-of-k`` survive a crash or Ctrl-C: rows are appended as batches
finish, and reopening the file reads back the keys already written (checking each row), drops a half-written last
line (a crash mid-write) of a file mlxsft wrote, and takes an exclusive lock so two processes never append to the
same file. A file that mlxsft did not write is never cut, mended or emptied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from mlxsft.errors import ConfigError, DataError, RunError

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


def written_by_mlxsft(row: dict) -> bool:
    """A row ``distill`` / ``best-of-k`` wrote: it carries their ``meta`` (the step and mlxsft's version)."""
    meta = row.get("meta")
    return isinstance(meta, dict) and isinstance(meta.get("step"), str) and "mlxsft" in meta


def same_file(a: Path, b: Path) -> bool:
    """One file under two names: the same path, a symlink, ``..`` or a hard link."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): they cannot be one file
        return False


def refuse_same_file(paths: dict[str, Optional[Path]]) -> None:
    """ConfigError when two of the named paths (``{"--prompts": ..., "--out": ...}``) are one file, so an output
    can never be written over an input, or two outputs into one file."""
    named = [(flag, Path(p)) for flag, p in paths.items() if p is not None]
    for i, (flag_a, a) in enumerate(named):
        for flag_b, b in named[i + 1:]:
            if same_file(a, b):
                raise ConfigError(f"{flag_a} {a} and {flag_b} {b} are the same file; they must differ")


class ResumableOutput:
    """An append-only JSONL output that knows which rows it already holds.

    ``key(row)`` names a finished unit of work (a prompt id, or prompt id and sample); ``done`` holds the keys of
    every row in the file. ``on_row(line, row)`` sees each existing row while the file is read back (to check it
    comes from the same job, or to count its scores). ``overwrite`` empties the file instead.

    Nothing is changed before the whole file has been read and checked: then a half-written last line (a crash
    mid-write) is dropped, or a last row that lacks only its newline gets one, and ``overwrite`` empties the file;
    each only when every row in it was written by mlxsft (``written_by_mlxsft``). Anyone else's file is left
    byte for byte as it was, with a one-line error. ``open()`` + ``prepare()`` (what ``with`` does) let a caller
    check two outputs before changing either.
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
        self._size = 0  # bytes in the file when it was read back
        self._mend: Optional[str] = None  # what prepare() does: "empty", "cut" (dropped_bytes) or "newline"

    def __enter__(self) -> "ResumableOutput":
        self.open()
        try:
            self.prepare()
        except BaseException:
            self.close()
            raise
        return self

    def open(self) -> "ResumableOutput":
        """Lock the file and read it back; nothing in it is changed."""
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
            self._read_back()
        except BaseException:
            self.close()
            raise
        return self

    def _read_back(self) -> None:
        """Parse and check every row. The last line may lack its newline: a whole row is a row (a crash between
        the row and its newline, or a file written by hand), anything else is what a crash mid-write leaves."""
        name = str(self.path)
        ours = True  # every row so far was written by mlxsft
        rows = torn = 0
        newline = False  # the last row lacks its newline
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                self._size += len(raw)
                if not raw.strip():
                    continue
                last = not raw.endswith(b"\n")
                try:
                    row = parse_line(raw, name, lineno)
                except DataError as e:
                    if last:
                        torn = len(raw)
                        break
                    raise DataError(f"{e}; the output is damaged: fix or delete that line") from None
                newline = last
                rows += 1
                ours = ours and written_by_mlxsft(row)
                if self.overwrite:
                    if not ours:
                        raise ConfigError(f"{name}:{lineno}: --overwrite empties only an output written by mlxsft, "
                                          "and this row has no mlxsft meta", hint="use another --out")
                    continue
                if self.on_row is not None:
                    self.on_row(lineno, row)
                k = self.key(row)
                if k is not None:
                    self.done.add(k)
        if (torn or newline) and not (ours and rows):
            what = "is incomplete" if torn else "has no newline"
            raise DataError(f"its last line {what}, and no row shows that mlxsft wrote this file, so it is left as "
                            "it is", file=name, hint="fix or delete that line, or use another --out")
        if self.overwrite:
            self._mend = "empty" if self._size else None
        else:
            self.rows_before, self.dropped_bytes = rows, torn
            self._mend = "cut" if torn else "newline" if newline else None

    def prepare(self) -> None:
        """Make the checked file ready to append to: empty it (``overwrite``), or mend its last line."""
        fd = self._fd
        assert fd is not None, "prepare before open"
        if self._mend is None:
            return
        if self._mend == "newline":
            os.write(fd, b"\n")
        else:
            os.ftruncate(fd, 0 if self._mend == "empty" else self._size - self.dropped_bytes)
        os.fsync(fd)
        self._mend = None

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
