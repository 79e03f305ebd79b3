"""The ``mlxsft`` command group.

    mlxsft --help
    mlxsft train            # LoRA on the embedded SmolLM2 with the bundled dataset

Every user-facing error (``MlxsftError``) becomes one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import importlib
import sys

import click

from mlxsft import __version__
from mlxsft.errors import MlxsftError

# command name -> "module:attribute"; imported lazily so `mlxsft --help` stays fast
COMMANDS = {
    "train": "mlxsft.cli.train:train",
    "convert": "mlxsft.cli.convert:convert",
    "doctor": "mlxsft.cli.doctor:doctor",
    "data": "mlxsft.cli.data:data",
    "chat": "mlxsft.cli.chat:chat",
    "eval": "mlxsft.cli.eval:eval_command",
    "export": "mlxsft.cli.export:export",
    "report": "mlxsft.cli.report:report",
    "experiment": "mlxsft.cli.experiment:experiment",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, target in COMMANDS.items() if _importable(target))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None or not _importable(target):
            return None
        mod, attr = target.split(":")
        return getattr(importlib.import_module(mod), attr)


def _importable(target: str) -> bool:
    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlxsft")
def cli() -> None:
    """Supervised fine-tuning of LLMs on a laptop (MLX first, torch fallback)."""


def main(argv: list[str] | None = None) -> None:
    # no BLAS decision here: each command that runs MLX asks mlxsft.backends.registry.choose_blas once its
    # config (file, flags, resumed run) says which backend it uses
    try:
        rv = cli.main(args=argv, prog_name="mlxsft", standalone_mode=False)
        if isinstance(rv, int) and rv:  # ctx.exit(n) returns n when standalone_mode is off
            sys.exit(rv)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except MlxsftError as e:
        from mlxsft.cli.ui import print_error

        print_error(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
