"""``mlxsft export``: fuse a run's adapters into its base and write the model where its users run it.

    mlxsft export --run runs/sft-20261129-0712 --format mlx --out exports/sft-mlx [--quantize 4]
    mlxsft export --run runs/sft-20261129-0712 --format hf --out exports/sft-hf --dtype bfloat16
    mlxsft export --run runs/sft-20261129-0712 --format gguf --out exports/sft-gguf --gguf-type q8_0
    ollama create sft -f exports/sft-gguf/Modelfile
    mlxsft export --run runs/sft-20261129-0712 --format peft --out exports/sft-peft       # adapters, not fused
    mlxsft export --run runs/sft-20261129-0712 --format mlx-adapter --out exports/sft-mlx-adapter
    mlxsft export --run runs/sft-20261129-0712 --format gguf-lora --out exports/sft-gguf-lora  # llama.cpp --lora
    mlxsft export --run runs/sft-20261129-0712 --format peft --out exports/sft-peft --push-to-hub me/sft-peft

MLX and torch runs alike; ``--run`` may also be a run's ``best/``. Every export holds a model card (README.md);
GGUF exports an Ollama ``Modelfile`` too (gguf-lora: ``FROM`` the base's GGUF, ``ADAPTER`` the adapter).
``--out`` is written all at once: on any error it is left as it was. ``--push-to-hub`` uploads the finished
folder (token: ``HF_TOKEN`` or ``hf auth login``); a failed upload keeps the export on disk.
"""

from __future__ import annotations

import click

from mlxsft.export.gguf_format import GGUF_TYPES
from mlxsft.export.pipeline import DTYPES, FORMATS


@click.command(context_settings={"max_content_width": 110})
@click.option("--run", "-r", "run", required=True, type=click.Path(), metavar="RUN",
              help="Run folder (a run's best/ or an MLX checkpoints/step-… folder also works).")
@click.option("--format", "-f", "fmt", required=True, type=click.Choice(FORMATS),
              help="mlx: mlx-lm / LM Studio folder; hf: transformers folder; gguf: llama.cpp / Ollama file; "
                   "peft / mlx-adapter: the LoRA/DoRA adapters alone, not fused (PEFT / mlx-lm adapter_path); "
                   "gguf-lora: the LoRA adapter alone for llama.cpp --lora / Ollama ADAPTER.")
@click.option("--out", "-o", required=True, type=click.Path(), metavar="DIR",
              help="Output folder; must be new or empty unless --overwrite (written atomically).")
@click.option("--dtype", type=click.Choice(DTYPES), default=None,
              help="mlx/hf: weight dtype [default: the dtype the run trained in].")
@click.option("--quantize", "-q", type=click.Choice(["4", "8"]), default=None,
              help="mlx: quantize the fused model to 4 or 8 bits (QLoRA runs export de-quantized without it).")
@click.option("--group-size", type=click.Choice(["32", "64", "128"]), default="64", show_default=True,
              help="mlx: quantization group size.")
@click.option("--gguf-type", type=click.Choice(GGUF_TYPES), default=None,
              help="gguf: tensor type of the weight matrices (norms stay f32) [default: f16]; "
                   "gguf-lora: f32 or f16 [default: f32].")
@click.option("--model", "-m", default=None, metavar="SPEC",
              help="Base model, when not the one the run names (e.g. it moved).")
@click.option("--name", default=None, help="Model name in file names and metadata [default: the run folder's name].")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out, once the new export is complete.")
@click.option("--trust-remote-code", is_flag=True,
              help="Let the base model's own code run (model_file, HF auto_map); never read from the run's config.")
@click.option("--push-to-hub", "push_to_hub", default=None, metavar="REPO",
              help="Upload the finished export to this Hugging Face model repo (created if missing); the token "
                   "comes from HF_TOKEN or `hf auth login` and is never written anywhere.")
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repo private.")
def export(run: str, fmt: str, out: str, dtype: str | None, quantize: str | None, group_size: str,
           gguf_type: str | None, model: str | None, name: str | None, overwrite: bool,
           trust_remote_code: bool, push_to_hub: str | None, private: bool) -> None:
    """Fuse a run's adapters into its base model and write it as an MLX, Hugging Face or GGUF model, with a
    model card, the run's chat template and its end-of-turn stop tokens; or (peft, mlx-adapter, gguf-lora) write
    the adapters alone, for PEFT, mlx-lm or llama.cpp / Ollama to load on top of the base."""
    from mlxsft.cli.ui.export import export_progress, print_export, print_pushed
    from mlxsft.export import ExportOptions, export_run
    from mlxsft.errors import ConfigError
    from mlxsft.export.hub import check_push, push_export

    from mlxsft.backends import registry

    registry.choose_blas(registry.backend_of(None, run))  # fusing and quantizing run on the run's backend
    opts = ExportOptions(run=run, format=fmt, out=out, dtype=dtype, quantize=int(quantize) if quantize else None,
                         group_size=int(group_size), gguf_type=gguf_type, model=model, name=name,
                         overwrite=overwrite, trust_remote_code=trust_remote_code)
    if private and not push_to_hub:
        raise ConfigError("--private applies to --push-to-hub")
    if push_to_hub:
        check_push(push_to_hub)  # a bad repo id or no token: before minutes of export
    with export_progress(f"export {fmt}") as progress:
        result = export_run(opts, progress)
    print_export(result)
    if push_to_hub:
        print_pushed(push_export(result.out, push_to_hub, files=result.files, private=private), result.files)
