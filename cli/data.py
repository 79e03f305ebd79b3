"""``mlxsft data``: check, read and measure a dataset before training on it. PATH defaults to the bundled set.

    mlxsft data validate my.jsonl                        # each problem as file:line: field: what is wrong; exit 1 if any
    mlxsft data show my.jsonl -n 5                       # user prompts beside assistant responses
    mlxsft data stats my.jsonl --model smollm2-135m-instruct
    mlxsft data inspect my.jsonl --model smollm2-135m-instruct --row 3   # supervised tokens highlighted
    mlxsft data inspect my.jsonl --model M --json        # one {"input_ids", "loss_mask"} line per row: what training uses

PATH is a file, a folder with train/valid files, or a Hub dataset id. The data flags (``--format``,
``--train-on``, ``--max-seq-len``, ...) are the ones ``mlxsft train`` takes, with the same meaning.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

from mlxsft.cli.options import config_options, overrides_from
from mlxsft.config import DataConfig, ModelConfig, TrainConfig, field_index

READ_FLAGS = ("format", "columns")
TOKEN_FLAGS = READ_FLAGS + ("chat_template", "chat_template_kwargs", "train_on", "max_seq_len", "overlong", "max_rows")


def data_options(keep: tuple[str, ...]) -> Callable:
    return config_options(exclude=tuple(n for n in field_index() if n not in keep))


def flags_data_config(path: str | None, kwargs: dict[str, Any]) -> DataConfig:
    from mlxsft.config import load_config

    cfg = load_config(None, overrides_from(kwargs)).data
    cfg.data = path
    return cfg


path_argument = click.argument("path", required=False)
split_option = click.option("--split", default=None, help="Split to read (default: the train split).")
model_option = click.option("--model", default=ModelConfig().model, show_default=True,
                            help="Model whose tokenizer and chat template to use.")


@click.group(context_settings={"max_content_width": 110})
def data() -> None:
    """Check, read and measure datasets (PATH: file, folder, Hub id; default: bundled)."""


@data.command()
@path_argument
@data_options(READ_FLAGS)
def validate(path: str | None, **kwargs: Any) -> None:
    """Check every row; print each problem as file:line: field: what is wrong. Exit 1 if any."""
    from mlxsft.cli.ui.data import print_validation
    from mlxsft.data import validate_source

    report = validate_source(path, flags_data_config(path, kwargs))
    print_validation(report)
    if report.problems:
        # sys.exit, not ctx.exit: click returns (rather than raises) ctx.exit's code when not standalone.
        sys.exit(1)


@data.command()
@path_argument
@click.option("-n", "n_rows", default=5, show_default=True, help="Rows to show.")
@split_option
@data_options(READ_FLAGS)
def show(path: str | None, n_rows: int, split: str | None, **kwargs: Any) -> None:
    """A table of rows: user prompt beside assistant response."""
    from mlxsft.cli.ui.data import print_rows
    from mlxsft.data import load_conversations

    cfg = flags_data_config(path, kwargs)
    convs = load_conversations(path, split or cfg.train_split, cfg)
    print_rows(convs[: max(0, n_rows)], total=len(convs))


@data.command()
@path_argument
@model_option
@split_option
@click.option("--batch-size", default=TrainConfig().batch_size, show_default=True,
              help="Batch size for the padding estimate.")
@data_options(TOKEN_FLAGS)
def stats(path: str | None, model: str, split: str | None, batch_size: int, **kwargs: Any) -> None:
    """Rows, turns, token-length histogram, supervised-token fraction, padding."""
    from mlxsft.cli.ui.data import print_stats
    from mlxsft.data import prepare_split
    from mlxsft.data.summary import describe_split
    from mlxsft.models import load_tokenizer

    cfg = flags_data_config(path, kwargs)
    prepared = prepare_split(cfg, load_tokenizer(model), split or cfg.train_split, skip_invalid=True)
    print_stats(describe_split(prepared, batch_size))


@data.command()
@path_argument
@model_option
@split_option
@click.option("--row", type=int, default=None, help="Row index (0-based; default: the first row).")
@click.option("--json", "as_json", is_flag=True, help='One {"input_ids", "loss_mask"} line per row, as trained.')
@data_options(TOKEN_FLAGS)
def inspect(path: str | None, model: str, split: str | None, row: int | None, as_json: bool, **kwargs: Any) -> None:
    """The rendered tokens of a row with the supervised ones highlighted (or --json for every row)."""
    from mlxsft.cli.ui.data import print_inspect, print_json_rows
    from mlxsft.data import prepare_split, resolve_chat_template
    from mlxsft.data.load import conversation_at
    from mlxsft.data.encode import encode_rows
    from mlxsft.models import load_tokenizer
    from mlxsft.errors import DataError

    cfg = flags_data_config(path, kwargs)
    split = split or cfg.train_split
    tokenizer = load_tokenizer(model)
    if as_json:
        prepared = prepare_split(cfg, tokenizer, split)
        examples = prepared.examples
        if row is not None:
            examples = [e for e in examples if e.row == row]
            if not examples:
                raise DataError(f"row {row} is not used for training (out of range, over max_seq_len with "
                                "--overlong drop, or nothing supervised); see `mlxsft data inspect --row` without --json")
        print_json_rows(examples)
        return
    conv, total = conversation_at(path, split, cfg, 0 if row is None else row)  # that row alone is checked
    template = resolve_chat_template(tokenizer, cfg.chat_template)
    ids, mask = encode_rows([conv], tokenizer, template, cfg)[0]
    pieces = [tokenizer.decode([int(t)]) for t in ids]
    print_inspect(pieces, mask.tolist(), row=0 if row is None else row, source=conv.source,
                  max_seq_len=cfg.max_seq_len, overlong=cfg.overlong, total_rows=total)


def _add_curation_commands() -> None:
    """distill, best-of-k, filter (``cli/curate.py``): their modules import nothing heavy until they run."""
    from mlxsft.cli.curate import COMMANDS

    for command in COMMANDS:
        data.add_command(command)


_add_curation_commands()
