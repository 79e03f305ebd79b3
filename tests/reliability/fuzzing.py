"""Malformed datasets for the loader and validator, generated with hypothesis, and what must hold for each.

    from tests.reliability.fuzzing import run_fuzz
    counts, failures = run_fuzz(examples=500)         # {"jsonl": 500, ...}, [] when every property held

Files of every supported kind (JSON Lines, JSON, CSV, Parquet) are built from rows that are nearly right
(the format keys with wrong types, unknown roles, missing fields, empty strings, huge strings, control
characters, lone surrogate escapes) and from broken bytes (cut JSON, invalid UTF-8, deep nesting,
numbers too long to parse, NUL bytes, empty files, garbage Parquet). For each one:

- ``validate_source`` and ``load_conversations`` finish within a time limit (no hang) and raise nothing
  but ``MlxsftError``;
- every problem and error is one printable UTF-8 line that starts with the file name, and with
  ``file:line:`` whenever it has a line, the line lying inside the file;
- the two agree: ``load_conversations`` refuses a file exactly when ``validate`` lists a problem, with
  that first problem as its message;
- rows that pass go through rendering and tokenization (``prepare_split``) with nothing but
  ``MlxsftError`` either.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlxsft.config import DataConfig
from mlxsft.data import load_conversations, validate_source
from mlxsft.data.formats import FORMATS
from mlxsft.errors import DataError, MlxsftError

ERRORS: list[str] = []  # the messages seen, for a look by hand (bench/reliability.py --show-errors)
TIME_LIMIT_S = 20  # per example; a hang fails the property instead of stalling the suite


class Hang(BaseException):
    """Raised by the alarm; a BaseException so no ``except Exception`` in the code under test swallows it."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds}s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------------------------- values
NASTY_CHARS = st.characters(codec=None, exclude_categories=())  # any code point: controls, lone surrogates
text = st.one_of(
    st.text(max_size=30),
    st.text(NASTY_CHARS, max_size=30),
    st.sampled_from(["", " ", "\n", "\x00", "\x1b[31m", "<think>", "<think>a</think>", "</think>", "{{ x }}",
                     "{% if %}", "<|im_end|>", "\ud800", "\udfff", "\u202e", "\r\n", "[", "{"]),
)
huge_text = st.integers(100_000, 1_000_000).map(lambda n: "é" * n)
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                   text, st.integers(10 ** 30, 10 ** 40))
json_value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(text, inner, max_size=4)), max_leaves=12)

KEYS = ["messages", "conversations", "prompt", "completion", "text", "instruction", "input", "output", "system",
        "tools", "role", "content", "from", "value", "reasoning", "reasoning_content", "thinking", "tool_calls",
        "weight", "name"]
ROLES = ["user", "assistant", "system", "tool", "human", "gpt", "bot", "", "USER", None, 1]


def _message(role_key: str, content_key: str) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {},
        optional={role_key: st.one_of(st.sampled_from(ROLES), text),
                  content_key: st.one_of(text, json_value),
                  "reasoning": st.one_of(text, json_value), "tool_calls": json_value,
                  "weight": st.one_of(st.sampled_from([0, 1]), json_value), "name": text})


messages = st.one_of(st.lists(st.one_of(_message("role", "content"), json_value), max_size=6),
                     st.lists(_message("from", "value"), max_size=6), json_value)
# well-formed rows whose text is nasty: they get past validation into rendering and tokenization
turn_text = st.one_of(st.text(min_size=1, max_size=40), st.text(NASTY_CHARS, min_size=1, max_size=40),
                      st.sampled_from(["<think>a</think>b", "{{ messages }}", "<|im_end|>", "\x00", "\ud800 x"]))
good_row = st.one_of(
    st.lists(st.tuples(turn_text, turn_text), min_size=1, max_size=3).map(
        lambda turns: {"messages": [m for q, a in turns for m in ({"role": "user", "content": q},
                                                                  {"role": "assistant", "content": a})]}),
    st.builds(lambda p, c: {"prompt": p, "completion": c}, turn_text, turn_text),
    st.builds(lambda i, o, x: {"instruction": i, "output": o, "input": x}, turn_text, turn_text, turn_text),
    st.builds(lambda t: {"text": t}, turn_text),
    st.builds(lambda q, a: {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]},
              turn_text, turn_text),
)
row = st.one_of(
    good_row,
    good_row,
    st.builds(lambda q, a: {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
              st.one_of(huge_text, turn_text), huge_text),
    st.fixed_dictionaries({}, optional={k: st.one_of(messages, text, json_value) for k in KEYS}),
    st.fixed_dictionaries({"messages": messages}, optional={"tools": json_value, "system": text}),
    st.fixed_dictionaries({"prompt": st.one_of(text, messages)}, optional={"completion": st.one_of(text, messages)}),
    st.fixed_dictionaries({"instruction": text}, optional={"output": text, "input": json_value}),
    st.fixed_dictionaries({"conversations": messages}),
    st.dictionaries(text, json_value, max_size=5),
    json_value,
)


def _json_line(value: Any, ascii_only: bool) -> bytes:
    # ensure_ascii spells lone surrogates as \ud800 escapes; otherwise they become invalid UTF-8 bytes
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


broken_line = st.one_of(
    st.binary(max_size=60),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 200_000).map(lambda n: b"[" * n),
    st.integers(4000, 20_000).map(lambda n: b'{"messages": ' + b"7" * n + b"}"),
    st.sampled_from([b"", b"\xef\xbb\xbf", b"\x00" * 8, b"{", b"}", b'{"messages": [', b"null", b"[]", b"{}",
                     b'"just a string"', b"NaN", b"\xff\xfe", b'{"a": "\\ud800"}', b"\r"]),
)


@st.composite
def jsonl_file(draw: Callable) -> bytes:
    lines = draw(st.lists(st.one_of(st.builds(_json_line, row, st.booleans()), broken_line), max_size=6))
    if lines and draw(st.booleans()):  # a line cut short, as by a full disk or an interrupted copy
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = lines[i][: draw(st.integers(0, max(len(lines[i]) - 1, 0)))]
    return draw(st.sampled_from([b"\n", b"\r\n"])).join(lines)


@st.composite
def json_file(draw: Callable) -> bytes:
    rows = draw(st.lists(row, max_size=5))
    shape = draw(st.sampled_from(["array", "wrapper", "single", "cut", "lines", "garbage"]))
    if shape == "garbage":
        return draw(broken_line)
    if shape == "lines":
        return draw(jsonl_file())
    value = {draw(st.sampled_from(["data", "rows", "messages"])): rows} if shape == "wrapper" else rows
    if shape == "single":
        value = rows[0] if rows else draw(json_value)
    data = json.dumps(value, indent=draw(st.sampled_from([None, 1])), ensure_ascii=draw(st.booleans()))
    data_b = data.encode("utf-8", "surrogatepass")
    if shape == "cut":
        data_b = data_b[: draw(st.integers(0, len(data_b)))]
    return data_b


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@st.composite
def csv_file(draw: Callable) -> bytes:
    import csv
    import io

    header = draw(st.lists(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), min_size=0, max_size=4))
    buf = io.StringIO()
    writer = csv.writer(buf)
    if header:
        writer.writerow(header)
    for _ in range(draw(st.integers(0, 4))):
        cells = draw(st.lists(st.one_of(text, json_value, messages), max_size=len(header) + 1))
        writer.writerow([_cell(c) for c in cells])
    data = buf.getvalue().encode("utf-8", "surrogatepass")
    mutation = draw(st.sampled_from(["none", "quote", "nul", "cut", "bytes"]))
    if mutation == "quote":
        data += b'"unterminated,\n'
    elif mutation == "nul":
        data = data.replace(b",", b"\x00,", 1)
    elif mutation == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif mutation == "bytes":
        data = draw(st.binary(max_size=80))
    return data


@st.composite
def parquet_file(draw: Callable) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = draw(st.lists(st.fixed_dictionaries(
        {}, optional={"messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(ROLES[:6]),
                                                                   "content": st.text(max_size=20)}), max_size=3),
                      "prompt": st.text(max_size=20), "completion": st.one_of(st.none(), st.text(max_size=20)),
                      "text": st.one_of(st.none(), st.text(max_size=20)), "n": st.integers(-5, 5)}), max_size=4))
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        table = pa.table({"text": ["x"]})
    out = io.BytesIO()
    pq.write_table(table, out)
    data = out.getvalue()
    mutation = draw(st.sampled_from(["none", "cut", "flip", "garbage"]))
    if mutation == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif mutation == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    elif mutation == "garbage":
        data = b"PAR1" + draw(st.binary(max_size=64)) + b"PAR1"
    return data


FILES = {"jsonl": jsonl_file(), "json": json_file(), "csv": csv_file(), "parquet": parquet_file()}


# ----------------------------------------------------------------------------------------------- properties
def check_line(text: str, path: Path, line: Optional[int], n_lines: Optional[int]) -> None:
    assert "\n" not in text and "\r" not in text, f"not one line: {text[:200]!r}"
    text.encode("utf-8")  # printable anywhere: no lone surrogate
    assert text.isprintable(), f"control characters in: {text[:200]!r}"
    assert text.startswith(str(path)), f"does not start with the file name: {text[:200]!r}"
    if line is not None:
        assert text.startswith(f"{path}:{line}: "), f"no file:line: {text[:200]!r}"
        if n_lines is not None:
            assert 1 <= line <= n_lines, f"line {line} outside a {n_lines}-line file: {text[:200]!r}"


def check_dataset_file(path: Path, fmt: str = "auto") -> tuple[str, int]:
    """Validate and load one file; assert every property. Returns ("ok" | "problems" | "error", rows checked)."""
    cfg = DataConfig(data=str(path), format=fmt)
    data = path.read_bytes()
    n_lines = None if path.suffix == ".parquet" else data.count(b"\n") + 1
    if path.suffix == ".csv":  # csv reads universal newlines: a lone \r ends a line too (as most editors show)
        n_lines = data.count(b"\n") + data.count(b"\r") + 1
    with time_limit(TIME_LIMIT_S):
        try:
            report = validate_source(str(path), cfg)
        except MlxsftError as e:
            check_line(str(e), path, getattr(e, "line", None), n_lines)
            return "error", 0
        for p in report.problems:
            check_line(str(p), path, p.line, n_lines if p.line is not None and path.suffix != ".json" else None)
        try:
            convs = load_conversations(str(path), "train", cfg)
        except DataError as e:
            check_line(str(e), path, e.line, None)
            assert report.problems, f"load refused what validate passed: {e}"
            first = report.problems[0]
            if first.line is not None:  # a file-level problem ("no rows") is worded for each command
                assert str(e).startswith(str(first)), f"load and validate disagree: {e} / {first}"
            return "problems", report.rows
        assert not report.problems, f"load accepted what validate refused: {report.problems[0]}"
        assert len(convs) == report.rows > 0
        return "ok", report.rows


def check_prepared_rows(rows: list[Any], folder: Path, tokenizer: Any, fmt: str, max_seq_len: int,
                        train_on: str) -> str:
    """Rows through the whole data path up to tokens: only ``MlxsftError`` may come out."""
    from mlxsft.data import prepare_split

    path = folder / "train.jsonl"
    path.write_bytes(b"\n".join(_json_line(r, True) for r in rows))
    cfg = DataConfig(data=str(path), format=fmt, max_seq_len=max_seq_len, train_on=train_on)
    with time_limit(TIME_LIMIT_S):
        try:
            split = prepare_split(cfg, tokenizer, "train")
        except MlxsftError as e:
            check_line(str(e), path, getattr(e, "line", None), None)
            ERRORS.append(str(e))
            return "error"
    for ex in split.examples:
        assert len(ex.input_ids) == len(ex.loss_mask) <= max_seq_len and ex.loss_mask[0] == 0
    return "ok"


# ----------------------------------------------------------------------------------------------- runner
@dataclass
class FuzzResult:
    tried: Counter = field(default_factory=Counter)  # examples per kind
    rows: Counter = field(default_factory=Counter)  # rows read and checked, per kind
    outcomes: Counter = field(default_factory=Counter)  # ok / problems / error
    failures: list[str] = field(default_factory=list)


def fuzz_settings(examples: int, derandomize: bool) -> settings:
    return settings(max_examples=examples, deadline=timedelta(seconds=TIME_LIMIT_S), derandomize=derandomize,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example, HealthCheck.filter_too_much])


def fuzz_files(kind: str, folder: Path, examples: int, result: FuzzResult, derandomize: bool = True) -> None:
    """``examples`` generated files of one kind through ``check_dataset_file``; raises on the first failure."""
    path = folder / f"train.{kind}"

    @fuzz_settings(examples, derandomize)
    @given(data=FILES[kind], fmt=st.sampled_from(("auto",) + FORMATS))
    def prop(data: bytes, fmt: str) -> None:
        path.write_bytes(data)
        result.tried[kind] += 1
        outcome, rows = check_dataset_file(path, fmt)
        result.outcomes[outcome] += 1
        result.rows[kind] += rows

    prop()


def fuzz_prepare(tokenizer: Any, folder: Path, examples: int, result: FuzzResult, derandomize: bool = True) -> None:
    """Generated rows rendered and tokenized with a real tokenizer and chat template."""

    @fuzz_settings(examples, derandomize)
    @given(rows=st.one_of(st.lists(good_row, min_size=1, max_size=4), st.lists(row, min_size=1, max_size=4)),
           fmt=st.sampled_from(("auto", "auto", "auto") + FORMATS),
           max_seq_len=st.integers(8, 96), train_on=st.sampled_from(["assistant", "last", "all"]))
    def prop(rows: list, fmt: str, max_seq_len: int, train_on: str) -> None:
        result.tried["prepared"] += 1
        result.rows["prepared"] += len(rows)
        result.outcomes[check_prepared_rows(rows, folder, tokenizer, fmt, max_seq_len, train_on)] += 1

    prop()


def run_fuzz(folder: Path, examples: int, tokenizer: Any = None, derandomize: bool = False) -> FuzzResult:
    """Every kind of file (and, given a tokenizer, the prepare path); failures are collected, not raised."""
    result = FuzzResult()
    for kind in FILES:
        try:
            fuzz_files(kind, folder, examples, result, derandomize)
        except Exception as e:  # hypothesis re-raises the smallest failing example's error
            result.failures.append(f"{kind}: {type(e).__name__}: {str(e)[:500]}")
    if tokenizer is not None:
        try:
            fuzz_prepare(tokenizer, folder, max(examples // 5, 1), result, derandomize)
        except Exception as e:
            result.failures.append(f"prepared: {type(e).__name__}: {str(e)[:500]}")
    return result

