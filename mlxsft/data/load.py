"""Load a split as checked ``Conversation`` rows, or list every problem in a dataset (``mlxsft data validate``).

    from mlxsft.data import load_conversations, validate_path
    convs = load_conversations("my.jsonl", "train", cfg.data)       # DataError at the first bad row
    for problem in validate_path("my.jsonl", cfg.data):            # every bad row
        print(problem)                                              # my.jsonl:7: messages[1].role: unknown role 'bot' ...

Both run the same per-row checks (``formats.to_conversation``), so ``train`` refuses exactly what ``validate`` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlxsft.config import DataConfig
from mlxsft.data.bundled_paths import bundled_path
from mlxsft.data.formats import to_conversation
from mlxsft.data.readers import data_files, is_local, read_file, read_split
from mlxsft.data.records import Conversation, Problem, RawRow
from mlxsft.errors import DataError, SplitNotFound


def load_conversations(source: str | None, split: str, cfg: DataConfig) -> list[Conversation]:
    """The rows of one split, checked and normalised; ``max_rows`` caps the training split. The first
    malformed row is a DataError naming its file and line (training never runs on part of a file)."""
    rows = read_split(source, split, cfg.train_split)
    convs, problems = convert_rows(rows, cfg)
    if problems:
        raise _first_problem(problems, source)
    return _capped(convs, source, split, cfg)


def load_valid_conversations(source: str | None, split: str, cfg: DataConfig) -> tuple[list[Conversation], int]:
    """``load_conversations`` that leaves malformed rows out (``mlxsft data stats``): (rows, how many left out)."""
    rows = read_split(source, split, cfg.train_split)
    convs, problems = convert_rows(rows, cfg)
    if problems and not convs:
        raise _first_problem(problems, source)
    return _capped(convs, source, split, cfg), len({(p.file, p.line) for p in problems})


def conversation_at(source: str | None, split: str, cfg: DataConfig, index: int) -> tuple[Conversation, int]:
    """Row ``index`` of a split (0-based, counting every row of the files) and the number of rows; only that
    row is checked, so a malformed row elsewhere does not hide it (``mlxsft data inspect --row``)."""
    rows = read_split(source, split, cfg.train_split)
    if not 0 <= index < len(rows):
        raise DataError(f"--row {index} is out of range: split '{split}' has {len(rows)} rows (0..{len(rows) - 1})")
    conv, problems = to_conversation(rows[index], cfg.format, cfg.columns)
    if problems:
        raise _first_problem(problems, source)
    if conv is None:
        raise DataError(f"--row {index} has no conversation to show", file=rows[index].file, line=rows[index].line)
    return conv, len(rows)


def _first_problem(problems: list[Problem], source: str | None) -> DataError:
    more = len(problems) - 1
    hint = None
    if more:
        command = "mlxsft data validate" + (f" {source}" if source is not None else "")
        hint = f"{more} more problem{'s' * (more > 1)}; `{command}` lists them all"
    first = problems[0]
    return DataError(first.message, file=first.file, line=first.line, field=first.field or None, hint=hint)


def _capped(convs: list[Conversation], source: str | None, split: str, cfg: DataConfig) -> list[Conversation]:
    if not convs:
        label = source if source is not None else "bundled dataset"
        raise DataError(f"split '{split}' has no rows", file=label)
    if cfg.max_rows is not None and split == cfg.train_split:
        convs = convs[: cfg.max_rows]
    return convs


def convert_rows(rows: list[RawRow], cfg: DataConfig) -> tuple[list[Conversation], list[Problem]]:
    convs: list[Conversation] = []
    problems: list[Problem] = []
    for raw in rows:
        conv, bad = to_conversation(raw, cfg.format, cfg.columns)
        if bad:
            problems += bad
        elif conv is not None:
            convs.append(conv)
    return convs, problems


@dataclass
class Validation:
    """What ``validate_source`` checked and found."""

    problems: list[Problem] = field(default_factory=list)
    rows: int = 0
    bad_rows: int = 0
    files: list[str] = field(default_factory=list)


def validate_source(path: str | Path | None, cfg: DataConfig) -> Validation:
    """Check every row of every split a source holds (bundled: train and valid; a folder: each data file)."""
    report = Validation()
    for label, rows in _all_splits(path, cfg):
        report.files.append(label)
        if not rows:
            report.problems.append(Problem(label, None, "", "no rows"))
        for raw in rows:
            report.rows += 1
            _, bad = to_conversation(raw, cfg.format, cfg.columns)
            if bad:
                report.bad_rows += 1
                report.problems += bad
    return report


def validate_path(path: str | Path | None, cfg: DataConfig) -> list[Problem]:
    return validate_source(path, cfg).problems


def _all_splits(path: str | Path | None, cfg: DataConfig) -> list[tuple[str, list[RawRow]]]:
    if path is None:
        return [(str(bundled_path(s)), list(read_file(bundled_path(s)))) for s in ("train", "valid")
                if bundled_path(s).is_file()]
    source = str(path)
    if is_local(source):
        p = Path(source).expanduser()
        if p.is_dir():
            files = data_files(p)
            if not files:
                raise DataError("no data files (.jsonl, .json, .parquet, .csv) in this folder", file=source)
            return [(str(f), list(read_file(f))) for f in files]
        if not p.is_file():
            raise DataError("file or folder not found", file=source)
        return [(source, list(read_file(p)))]
    out = []
    for split in (cfg.train_split, cfg.valid_split):
        try:
            out.append((f"{source}[{split}]", read_split(source, split, cfg.train_split)))
        except SplitNotFound:
            if split == cfg.train_split:
                raise
    return out

