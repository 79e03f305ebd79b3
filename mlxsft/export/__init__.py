"""Export a fine-tuned run where its users run models: MLX (mlx-lm, LM Studio), Hugging Face transformers, GGUF
(llama.cpp, Ollama), or its adapters alone for PEFT or mlx-lm (no fuse).

    from mlxsft.export import ExportOptions, export_run
    export_run(ExportOptions(run="runs/sft-…", format="hf", out="exports/sft-hf", dtype="float16"))

    mlxsft export --run runs/sft-… --format gguf --out exports/sft-gguf --gguf-type q8_0

Files, one job each: ``run.py`` (read a run folder of either backend), ``fuse.py`` (adapters into the base:
mlx-lm's ``fuse`` / peft's ``merge_and_unload``), ``stops.py`` (EOS and end-of-turn ids from the run's
template), ``hf_format.py``, ``mlx_format.py``, ``gguf_format.py`` + ``gguf_vocab.py`` (the three writers),
``modelfile.py`` (Ollama), ``card.py`` (README.md), ``adapter_format.py`` (the unfused adapters, converted
between mlx-lm's and PEFT's conventions), ``pipeline.py`` (the order of work, all or nothing). The GGUF
read-back uses the models layer's checked reader, ``mlxsft.models.gguf_read``.
Nothing here prints; progress goes through a ``(stage, fraction)`` callback.
"""

from mlxsft.export.pipeline import FORMATS, ExportOptions, ExportResult, export_run

__all__ = ["FORMATS", "ExportOptions", "ExportResult", "export_run"]
