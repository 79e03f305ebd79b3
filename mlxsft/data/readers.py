"""Read raw rows, with their line numbers, from local files, folders of split files, the Hub, or the bundled set.

    from mlxsft.data.readers import read_split
    rows = read_split("data/", "valid")      # data/valid.jsonl (or validation.parquet, val.csv, ...)

JSON Lines, JSON, Parquet and CSV files are read here rather than through ``datasets`` because validation must
point at the exact line of a bad row, and ``datasets`` refuses a whole file over one bad line. Hub datasets do go
through ``datasets.load_dataset``; their "line" is the 1-based row number. A missing split raises ``SplitNotFound``
(a DataError), which callers use to treat a validation split as optional.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

from mlxsft.data.bundled_paths import bundled_path
from mlxsft.data.records import Problem, RawRow
from mlxsft.errors import DataError, SplitNotFound

EXTENSIONS = (".jsonl", ".ndjson", ".json", ".parquet", ".csv")
ROW_LIST_FIELDS = ("messages", "conversations", "prompt", "completion", "tools")
# Names a split goes by in the wild (HF uses "validation", many repos "val" or "dev").
SPLIT_ALIASES = {
    "train": ("train",),
    "valid": ("valid", "validation", "val", "dev"),
    "test": ("test",),
}
for _names in list(SPLIT_ALIASES.values()):
    for _n in _names:
        SPLIT_ALIASES.setdefault(_n, _names)


def split_names(split: str) -> tuple[str, ...]:
    return SPLIT_ALIASES.get(split, (split,))


def is_local(source: str) -> bool:
    """A path on disk (existing or clearly meant as one) rather than a Hub dataset id."""
    p = Path(source).expanduser()
    return (p.exists() or p.suffix.lower() in EXTENSIONS or source.startswith((".", "/", "~"))
            or source.count("/") > 1)


def split_files(folder: Path, split: str) -> list[Path]:
    """The files of one split in a folder: ``valid.jsonl``, ``validation-00000-of-00002.parquet``, ``data/train.csv``."""
    found: list[Path] = []
    for base in (folder, folder / "data"):
        if not base.is_dir():
            continue
        for name in split_names(split):
            for f in sorted(base.iterdir()):
                stem = f.name[: -len(f.suffix)] if f.suffix else f.name
                if f.is_file() and f.suffix.lower() in EXTENSIONS and (stem == name or stem.startswith(name + "-")):
                    found.append(f)
            if found:
                return found
    return found


def data_files(folder: Path) -> list[Path]:
    """Every supported data file directly in a folder (or its ``data/``), for ``mlxsft data validate FOLDER``."""
    files = [f for base in (folder, folder / "data") if base.is_dir()
             for f in sorted(base.iterdir()) if f.is_file() and f.suffix.lower() in EXTENSIONS]
    return files


def read_split(source: str | None, split: str, train_split: str = "train") -> list[RawRow]:
    """The raw rows of one split. ``source`` None means the bundled dataset; a single file is the train split."""
    if source is None:
        path = next((bundled_path(n) for n in split_names(split) if bundled_path(n).is_file()), None)
        if path is None:
            raise SplitNotFound(f"split '{split}' not found in the bundled dataset")
        return list(read_file(path))
    if not is_local(source):
        return list(read_hub(source, split))
    path = Path(source).expanduser()
    if path.is_dir():
        files = split_files(path, split)
        if not files:
            raise SplitNotFound(f"split '{split}' not found (no {'/'.join(split_names(split))} file with a "
                            f"{', '.join(EXTENSIONS)} extension)", file=str(path))
        return [row for f in files for row in read_file(f)]
    if not path.is_file():
        raise DataError("file or folder not found", file=str(path))
    if split not in split_names(train_split):
        # One file holds one split: the training one. Ask for a folder to add a validation split.
        raise SplitNotFound(f"split '{split}' not found: a single file is the '{train_split}' split "
                        f"(use a folder with {train_split} and {split} files)", file=str(path))
    return list(read_file(path))


def read_file(path: Path) -> Iterator[RawRow]:
    suffix = path.suffix.lower()
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror or e})", file=name) from None
    if suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_rows(data, name)
    elif suffix == ".json":
        yield from _json_rows(data, name)
    elif suffix == ".csv":
        yield from _csv_rows(data, name)
    elif suffix == ".parquet":
        yield from _parquet_rows(path, name)
    else:
        raise DataError(f"unsupported file type '{suffix}' (expected {', '.join(EXTENSIONS)})", file=name)


def _bad_utf8(name: str, line: int, err: UnicodeDecodeError) -> RawRow:
    return RawRow(None, name, line, [Problem(name, line, "row", f"invalid UTF-8 (byte 0x{err.object[err.start]:02x} "
                                                                f"at column {err.start + 1})")])


def _jsonl_rows(data: bytes, name: str) -> Iterator[RawRow]:
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some editors write
        data = data[3:]
    for i, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield _bad_utf8(name, i, e)
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            yield RawRow(None, name, i, [Problem(name, i, "row", f"invalid JSON ({e.msg} at column {e.colno})")])
            continue
        except (ValueError, RecursionError) as e:
            yield RawRow(None, name, i, [Problem(name, i, "row", _json_limit(e))])
            continue
        yield _checked(RawRow(value, name, i), _spells_surrogate(text))


def _json_limit(e: Exception) -> str:
    """What Python's JSON parser refused beyond syntax: nesting past the recursion limit, or a huge integer."""
    if isinstance(e, RecursionError):
        return "invalid JSON (nested too deeply)"
    if "digits" in str(e):
        return f"invalid JSON (a number with more than {sys.get_int_max_str_digits()} digits)"
    return f"invalid JSON ({e})"


# "\ud800".."\udfff" escapes: JSON can spell half a surrogate pair, which is no text at all (not UTF-8)
_SURROGATE_ESCAPE = re.compile(r"\\[uU][dD][89a-fA-F]")


def _spells_surrogate(text: str) -> bool:
    """A cheap first look: only JSON text holding such an escape can decode to a lone surrogate."""
    return _SURROGATE_ESCAPE.search(text) is not None


def _checked(row: RawRow, maybe_surrogate: bool) -> RawRow:
    """The row, or a problem if its JSON spelled a lone surrogate (``"\\ud800"``) anywhere in it."""
    if maybe_surrogate and _has_lone_surrogate(row.value):
        problem = Problem(row.file, row.line, "row", "invalid UTF-8 (a \\ud800-\\udfff escape that is half a "
                                                     "surrogate pair)")
        return RawRow(None, row.file, row.line, [problem])
    return row


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]  # iterative: rows may nest as deep as the parser allows
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack += list(v.keys()) + list(v.values())
        elif isinstance(v, list):
            stack += v
    return False


def _decode_whole(data: bytes, name: str) -> str | RawRow:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1)
        return RawRow(None, name, line, [Problem(name, line, "row", f"invalid UTF-8 (byte 0x{data[e.start]:02x} "
                                                                    f"at column {column + 1})")])


def _json_rows(data: bytes, name: str) -> Iterator[RawRow]:
    """A JSON array of rows (each row's line is where it starts), or a JSON Lines file named .json."""
    text = _decode_whole(data, name)
    if isinstance(text, RawRow):
        yield text
        return
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if not text.startswith("[", pos):
        try:  # one object: either {"rows": [...]}-style or the first line of JSON Lines
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            yield RawRow(None, name, e.lineno, [Problem(name, e.lineno, "row", f"invalid JSON ({e.msg})")])
            return
        except (ValueError, RecursionError) as e:
            line = text.count("\n", 0, pos) + 1
            yield RawRow(None, name, line, [Problem(name, line, "row", _json_limit(e))])
            return
        if _skip_ws(text, end) < len(text):
            yield from _jsonl_rows(data, name)
            return
        # {"data": [rows]}: one key holding a list that is not itself a row field
        key = next(iter(value), None) if isinstance(value, dict) and len(value) == 1 else None
        if key is not None and isinstance(value[key], list) and key not in ROW_LIST_FIELDS:
            maybe = _spells_surrogate(text)
            for i, row in enumerate(value[key], start=1):
                yield _checked(RawRow(row, name, i), maybe)  # no per-row lines inside a wrapper: row numbers
        else:
            yield _checked(RawRow(value, name, 1), _spells_surrogate(text))
        return
    pos = _skip_ws(text, pos + 1)
    line, counted = 1, 0
    if text.startswith("]", pos):
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            start, (value, pos) = pos, decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            yield RawRow(None, name, e.lineno, [Problem(name, e.lineno, "row", f"invalid JSON ({e.msg})")])
            return
        except (ValueError, RecursionError) as e:
            yield RawRow(None, name, line, [Problem(name, line, "row", _json_limit(e))])
            return
        yield _checked(RawRow(value, name, line), _spells_surrogate(text[start:pos]))
        pos = _skip_ws(text, pos)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
        elif text.startswith("]", pos):
            return
        else:
            bad = text.count("\n", 0, pos) + 1
            yield RawRow(None, name, bad, [Problem(name, bad, "row", "invalid JSON (expected ',' or ']')")])
            return


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _csv_rows(data: bytes, name: str) -> Iterator[RawRow]:
    text = _decode_whole(data, name)
    if isinstance(text, RawRow):
        yield text
        return
    # csv refuses cells over 128 KiB by default; long documents are legitimate rows
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    start = 2  # line 1 is the header; a row's line is where it starts (quoted fields may span lines)
    try:
        for row in reader:
            yield RawRow({k: v for k, v in row.items() if k is not None}, name, start)
            start = reader.line_num + 1
    except csv.Error as e:
        yield RawRow(None, name, reader.line_num, [Problem(name, reader.line_num, "row", f"invalid CSV ({e})")])


def _parquet_rows(path: Path, name: str) -> Iterator[RawRow]:
    try:
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    except ImportError:
        raise DataError("reading Parquet needs pyarrow (pip install pyarrow)", file=name) from None
    except Exception as e:  # pyarrow raises its own ArrowInvalid / OSError family
        raise DataError(f"not a readable Parquet file ({e})", file=name) from None
    for i, row in enumerate(rows, start=1):
        yield RawRow(row, name, i)  # "line" = 1-based row number


def read_hub(spec: str, split: str) -> Iterator[RawRow]:
    """Rows of a Hugging Face dataset, ``org/name`` or ``org/name:config``, through ``datasets``."""
    dataset_id, _, config = spec.partition(":")
    try:
        import datasets
    except ImportError:
        raise DataError("loading Hub datasets needs the `datasets` package") from None
    last: Exception | None = None
    for name in split_names(split):
        try:
            ds = datasets.load_dataset(dataset_id, config or None, split=name)
        except ValueError as e:  # datasets raises ValueError('Unknown split ...') for a missing split
            if "split" in str(e).lower():
                last = e
                continue
            raise DataError(f"cannot load Hub dataset ({e})", file=spec) from None
        except Exception as e:  # not on the Hub, offline, gated, ...: one line for the user
            msg = " ".join(str(e).split())[:300]
            raise DataError(f"not a local file or folder, and loading it from the Hugging Face Hub failed "
                            f"({type(e).__name__}: {msg})", file=spec) from None
        label = f"{spec}[{name}]"
        for i, row in enumerate(ds, start=1):
            yield RawRow(row, label, i)
        return
    raise SplitNotFound(f"split '{split}' not found on the Hub ({last})", file=spec)
