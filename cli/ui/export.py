"""Rendering for ``mlxsft export``: progress while it fuses and writes, then what was written and how to use it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable

from rich.markup import escape
from rich.table import Table

from mlxsft.cli.ui import console, print_warning
from mlxsft.cli.ui.models import conversion_progress

if TYPE_CHECKING:
    from mlxsft.export import ExportResult


@contextmanager
def export_progress(title: str) -> Iterator[Callable[[str, float], None]]:
    with conversion_progress(title) as progress:  # the same (stage, fraction) bar as `mlxsft convert`
        yield progress


def print_export(result: "ExportResult") -> None:
    run = result.run
    table = Table.grid(padding=(0, 2))
    table.add_row("[bold]export[/]", escape(str(result.out)))
    table.add_row("format", result.format)
    table.add_row("from", escape(f"{run.weights_dir} ({run.backend}, {run.method}) on {run.base_model}"))
    table.add_row("precision", escape(result.precision))
    stops = result.stops
    if result.format not in ("peft", "mlx-adapter"):  # an adapter alone has no tokenizer: the base's stops apply
        # (gguf-lora: the Modelfile's, from the base's tokenizer and the run's template)
        eot = f"{stops.eot_text!r}" if stops.eot_text else "none"
        table.add_row("stops", escape(f"end of turn {eot}, token ids {', '.join(map(str, stops.ids)) or 'none'}"))
    table.add_row("files", escape(", ".join(result.files)))
    table.add_row("size", f"{result.size_bytes / 2**20:.1f} MiB")
    console.print(table)
    for w in result.warnings:
        print_warning(w)
    if result.format == "gguf-lora":  # the Modelfile's FROM: the base's GGUF, beside it
        console.print(f"[dim]base:[/] {escape(_base_step(result))}", soft_wrap=True)
    console.print(f"[dim]try:[/] {escape(_try(result))}", soft_wrap=True)


def print_pushed(url: str, files: list[str]) -> None:
    console.print(f"[bold]pushed[/] {escape(url)} [dim]({len(files)} files)[/]", soft_wrap=True)


def _base_step(result: "ExportResult") -> str:
    target = f"{result.out}/{result.base_from}"
    if result.base_gguf is not None:
        return f"ln -s {result.base_gguf} {target}"
    from mlxsft.models import resolve_model

    return (f"python convert_hf_to_gguf.py {resolve_model(result.run.base_model).path} --outtype f16 "
            f"--outfile {target}   (llama.cpp's converter)")


def _try(result: "ExportResult") -> str:
    out = str(result.out)
    if result.format == "mlx":
        return f"mlx_lm.generate --model {out} --prompt 'Hello'"
    if result.format == "hf":
        return f"mlxsft chat --model {out}"
    if result.format == "peft":
        return f"PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), '{out}')"
    if result.format == "mlx-adapter":
        return f"mlx_lm.generate --model BASE --adapter-path {out} --prompt 'Hello'"
    gguf = next((f for f in result.files if f.endswith(".gguf")), "model.gguf")
    if result.format == "gguf-lora":
        return (f"ollama create {result.name.lower()} -f {out}/Modelfile   (or: llama-cli -m {out}/{result.base_from} "
                f"--lora {out}/{gguf} --jinja --chat-template-file {out}/chat_template.jinja)")
    return f"ollama create {result.name.lower()} -f {out}/Modelfile   (or: llama-cli -m {out}/{gguf} -cnv)"
