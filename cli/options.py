"""Click options generated from the config dataclasses, so every field is a flag with its help text.

Only flags the user actually typed become overrides (CLI > YAML > defaults).
"""

from __future__ import annotations

import typing
from typing import Any, Callable

import click

from mlxsft.config import _field_type, field_index


def config_options(exclude: tuple[str, ...] = ()) -> Callable:
    def decorate(fn: Callable) -> Callable:
        for name, (sec, f) in reversed(list(field_index().items())):
            if name in exclude:
                continue
            typ = _field_type(sec, name)
            args = [a for a in typing.get_args(typ) if a is not type(None)]
            base = typing.get_origin(args[0] if args else typ) or (args[0] if args else typ)
            flag = "--" + name.replace("_", "-")
            help_text = f.metadata.get("help", "")
            default = f.default if f.default is not __import__("dataclasses").MISSING else None
            if base is bool:
                fn = click.option(f"{flag}/--no-{name.replace('_', '-')}", name, default=None,
                                  help=f"{help_text} [default: {default}]")(fn)
            else:
                choices = f.metadata.get("choices")
                many = base is list  # repeatable, each a comma list too; mlxsft.config checks list items' choices
                ctype: Any = click.Choice(choices) if choices and not many else None
                shown = default if default not in (None, [], {}) else None
                metavar = "|".join(choices) if choices and many else None if choices else _metavar(base)
                fn = click.option(flag, name, type=ctype, default=None, multiple=many, metavar=metavar,
                                  help=help_text + (f" [default: {shown}]" if shown is not None else ""))(fn)
        return fn

    return decorate


def _metavar(base: Any) -> str:
    """What a flag takes, as click names its own types (values are parsed and checked by mlxsft.config)."""
    return {int: "INTEGER", float: "FLOAT", str: "TEXT", list: "A,B,...", dict: "KEY=VALUE,..."}.get(base, "TEXT")


def overrides_from(kwargs: dict[str, Any]) -> dict[str, Any]:
    index = field_index()
    # () is a repeatable flag (a list field) not given
    return {k: v for k, v in kwargs.items() if k in index and v is not None and v != ()}
