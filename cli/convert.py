"""``mlxsft convert``: write an MLX model folder from any model spec.

    mlxsft convert --model smollm2-135m-instruct --out smol-mlx
    mlxsft convert --model ./my-hf-model --out my-mlx-4bit --quantize 4
    mlx_lm.generate --model smol-mlx --prompt hi        # the result is a plain mlx-lm folder
"""

from __future__ import annotations

import click

from mlxsft.models.aliases import DEFAULT_ALIAS, EMBEDDED_ALIASES


@click.command(context_settings={"max_content_width": 110})
@click.option("--model", "-m", "spec", default=DEFAULT_ALIAS, show_default=True, metavar="SPEC",
              help=f"Model to convert: alias ({', '.join(EMBEDDED_ALIASES)}), local Hugging Face or MLX "
                   "folder, .gguf file, or Hub id (org/name).")
@click.option("--out", "-o", required=True, type=click.Path(), metavar="DIR",
              help="Output folder; must not exist or be empty (written atomically).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32",
              show_default=True, help="Dtype of the unquantized weights (and of the scales when quantized).")
@click.option("--quantize", "-q", type=click.Choice(["4", "8"]), default=None,
              help="Quantize linear and embedding layers to 4 or 8 bits (GGUF input is de-quantized first).")
@click.option("--group-size", type=click.Choice(["32", "64", "128"]), default="64", show_default=True,
              help="Quantization group size.")
@click.option("--trust-remote-code", is_flag=True,
              help="Let the model's own code run (a config.json model_file, Hub *.py files); only for code you trust.")
def convert(spec: str, out: str, dtype: str, quantize: str | None, group_size: str, trust_remote_code: bool) -> None:
    """Convert a model (HF folder, MLX folder, GGUF, Hub id or alias) into an MLX folder that
    mlx_lm.load and mlx_lm.generate use directly; the tokenizer and chat template come along."""
    from mlxsft.cli.ui.models import conversion_progress, print_converted
    from mlxsft.models import convert_model

    from mlxsft.backends import registry

    registry.choose_blas("mlx")  # conversion and quantization are MLX ops
    with conversion_progress(spec) as progress:
        folder = convert_model(spec, out, dtype=dtype, quantize=int(quantize) if quantize else None,
                               group_size=int(group_size), progress=progress, trust_remote_code=trust_remote_code)
    print_converted(folder)
