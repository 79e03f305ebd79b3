"""``mlxsft doctor``: what this machine offers (chip, memory, MLX/torch devices, BLAS, models, HF cache)
and which backend ``--backend auto`` picks, with the reason.

    mlxsft doctor
    mlxsft doctor --json
"""

from __future__ import annotations

import click


@click.command(context_settings={"max_content_width": 110})
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def doctor(as_json: bool) -> None:
    """Report platform, chip and memory, MLX and torch devices, the BLAS MLX runs on, installed embedded
    models, the Hugging Face cache and offline state, and the backend `--backend auto` would pick."""
    from mlxsft.cli.ui.models import print_doctor, print_doctor_json
    from mlxsft.doctor import collect

    from mlxsft.backends import registry

    registry.choose_blas("mlx")  # report (and time) the BLAS MLX really runs on under `mlxsft`
    sections = collect()
    (print_doctor_json if as_json else print_doctor)(sections)
