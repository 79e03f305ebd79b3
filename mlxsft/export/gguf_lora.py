"""A LoRA run's adapters as a GGUF LoRA adapter for llama.cpp and Ollama, not fused into the base.

    mlxsft export --run RUN --format gguf-lora --out DIR [--gguf-type f32|f16]
    llama-cli -m BASE.gguf --lora DIR/RUN-lora-f32.gguf        # or: ollama create run -f DIR/Modelfile

The file is what llama.cpp's ``convert_lora_to_gguf.py`` writes from a PEFT adapter, and what its loader
(``src/llama-adapter.cpp``) checks:
- metadata ``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha`` (float32), and the
  base's ``general.architecture`` (llama.cpp refuses an adapter of another architecture);
- two tensors per adapted linear layer, named after the base tensor: ``blk.0.attn_q.weight.lora_a`` is PEFT's
  A, numpy (r, in) = ggml ne [in, r], and ``blk.0.attn_q.weight.lora_b`` PEFT's B, (out, r) = ne [r, out].
  The loader checks ``a.ne[0] == W.ne[0]``, ``b.ne[1] == W.ne[1]`` and ``a.ne[1] == b.ne[0]`` (the rank);
- llama.cpp adds ``(alpha / r) * B (A x)`` with r read from ``lora_b``: PEFT's own scaling, so
  ``alpha = scaling * r`` (PEFT's lora_alpha; lora_alpha * sqrt(r) for rsLoRA; mlx-lm's ``scale * r``);
- llama: llama.cpp stores q/k weights with their rows permuted into its rotary layout, so the update's rows
  are permuted too, which are B's rows (``gguf_format.rotary_rows``, as convert_lora_to_gguf does through
  LlamaModel.modify_tensors); A acts on the input and stays. Gemma 3 and Qwen2 keep transformers' layout
  (Gemma's +1 on norm weights touches no linear layer).

The tensors come through ``adapter_format.peft_adapter`` (the one place that knows mlx-lm's and PEFT's
conventions), the names through gguf's ``TensorNameMap`` as in the full GGUF export. DoRA is refused:
llama.cpp has no magnitude vector, and the adapter without it would be another model. Matrices are f32 by
default (an adapter is small, and f32 holds what any training dtype held exactly) or f16.

The base: an adapter fits only the weights it trained on, so the Modelfile's ``FROM`` must be a GGUF of
exactly that base. A base that is a GGUF itself (an embedded model, a ``.gguf`` file) is named by its file
name, to be put or linked beside the Modelfile (the CLI prints the ``ln -s``); the export never writes a local
path. Otherwise ``FROM`` names the f16 GGUF that llama.cpp's ``convert_hf_to_gguf.py`` makes of the base
folder, and the Modelfile and card say how. A QLoRA run's adapter is the same f32/f16 file: it trained against
a quantized base, so on any GGUF of the base it behaves slightly differently from training (the export warns,
as for every adapter format); the base's own GGUF, when it has one, is the closest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from mlxsft.errors import ModelError, RunError
from mlxsft.export.gguf_format import ARCHS, GGUF_TO_MODEL_TYPE, Arch, check_gguf_config, rotary_rows
from mlxsft.runs.read import RunFolder

Progress = Callable[[str, float], None]
LORA_TYPES = ("f32", "f16")
DEFAULT_TYPE = "f32"


@dataclass(frozen=True)
class BaseLayout:
    """What the adapter's names and rows depend on, read from the base's config or GGUF header."""

    arch: Arch
    n_head: int
    n_kv: int
    n_layers: int
    name: str  # the base as the card names it (a Hub id, an alias's or folder's name)
    gguf: Optional[Path] = None  # the base's own GGUF file (an embedded model or a .gguf base)
    gguf_tensors: Optional[dict[str, tuple[int, ...]]] = None  # its tensors' ggml shapes (ne), to check against

    @property
    def from_name(self) -> str:
        """The file name the Modelfile's ``FROM`` gives the base GGUF (beside the Modelfile)."""
        if self.gguf is not None:
            return _safe_file(self.gguf.name)
        return _safe_file(f"{self.name}-f16.gguf")

    @property
    def note(self) -> str:
        """What the Modelfile and the card say about ``FROM``."""
        if self.gguf is not None:
            return (f"FROM must be the base model's own GGUF, the weights this adapter was trained on: "
                    f"{self.from_name} ({self.name}). Put it, or a link to it, beside this file, or change FROM "
                    "to its path.")
        return (f"FROM must be a GGUF of the base model {self.name}, the weights this adapter was trained on: "
                f"make it with llama.cpp's `python convert_hf_to_gguf.py <the base's folder> --outtype f16 "
                f"--outfile {self.from_name}` beside this file, or change FROM to a GGUF of it you have.")


def check_gguf_lora_run(run: RunFolder) -> BaseLayout:
    """Everything that can refuse the export, before anything is written: method, architecture, names."""
    from mlxsft.export.adapter_format import check_adapter_run

    check_adapter_run(run, "gguf-lora")
    if run.method == "dora":
        raise RunError(f"{run.weights_dir}: a DoRA run cannot be a GGUF LoRA adapter: llama.cpp has no DoRA",
                       hint="export --format gguf for the fused model, or --format peft for PEFT and vLLM")
    return base_layout(run)


def base_layout(run: RunFolder) -> BaseLayout:
    from mlxsft.export.adapter_format import base_name
    from mlxsft.models import resolve_model

    source = resolve_model(run.base_model)
    name = base_name(run)
    if source.format == "gguf":
        from mlxsft.models.gguf_read import read_fields

        fields, tensors = read_fields(Path(source.path))
        gguf_arch = str(fields["general.architecture"].value) if "general.architecture" in fields else "?"
        arch = _arch(GGUF_TO_MODEL_TYPE.get(gguf_arch, gguf_arch), str(source.path))

        def get(key: str, default: Optional[int] = None) -> int:
            field = fields.get(f"{gguf_arch}.{key}")
            if field is None and default is None:
                raise ModelError(f"{source.path}: no {gguf_arch}.{key} in the GGUF header")
            return int(field.value) if field is not None else default

        n_head = get("attention.head_count")
        return BaseLayout(arch=arch, n_head=n_head, n_kv=get("attention.head_count_kv", n_head),
                          n_layers=get("block_count"), name=name, gguf=Path(source.path),
                          gguf_tensors={t.name: t.shape for t in tensors})
    from mlxsft.models.checks import read_config

    config = read_config(Path(source.path))
    arch = _arch(str(config.get("model_type")), str(source.path))
    n_head = int(config["num_attention_heads"])
    return BaseLayout(arch=arch, n_head=n_head, n_kv=int(config.get("num_key_value_heads") or n_head),
                      n_layers=int(config["num_hidden_layers"]), name=name)


def _arch(model_type: str, where: str) -> Arch:
    """Only the names and the rotary layout matter to an adapter, so only the architecture is checked."""
    if model_type not in ARCHS:
        check_gguf_config({"model_type": model_type}, where)  # the one-line refusal, worded as for --format gguf
    return ARCHS[model_type]


@dataclass(frozen=True)
class LoraTensors:
    alpha: float  # llama.cpp's adapter.lora.alpha: it scales by alpha / r
    rank: int
    tensors: dict[str, np.ndarray]  # GGUF name -> float32 array, in numpy (row-major) order


def gguf_lora_tensors(run: RunFolder, layout: BaseLayout) -> LoraTensors:
    """The run's adapter as llama.cpp's tensors: named, oriented and (llama) permuted."""
    import gguf
    import mlx.core as mx

    from mlxsft.export.adapter_format import lora_scaling, peft_adapter, peft_modules

    weights, config = peft_adapter(run, "a GGUF LoRA adapter")
    if config.get("use_dora"):  # a run folder's files, whatever its config says
        raise RunError(f"{run.weights_dir}: a DoRA adapter cannot be a GGUF LoRA adapter: llama.cpp has no DoRA")
    modules = peft_modules(weights, dora=False)
    rank = int(config["r"])
    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, layout.arch.gguf_name.upper()), layout.n_layers)
    out: dict[str, np.ndarray] = {}
    for module, leaves in sorted(modules.items()):
        target = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise RunError(f"{run.weights_dir}: adapted module '{module}' has no GGUF tensor for "
                           f"{layout.arch.gguf_name}")
        a = np.array(leaves["lora_A.weight"].astype(mx.float32))  # (r, in)
        b = np.array(leaves["lora_B.weight"].astype(mx.float32))  # (out, r)
        if a.shape[0] != rank or b.shape[1] != rank:
            raise RunError(f"{module}: LoRA rank {a.shape[0]}/{b.shape[1]}, the adapter config says {rank}")
        _check_base_tensor(layout, target, a, b)
        out[f"{target}.lora_a"] = a
        b = rotary_rows(layout.arch, module, b, layout.n_head, layout.n_kv)
        out[f"{target}.lora_b"] = np.ascontiguousarray(b)
    return LoraTensors(alpha=lora_scaling(config) * rank, rank=rank, tensors=out)


def _check_base_tensor(layout: BaseLayout, target: str, a: np.ndarray, b: np.ndarray) -> None:
    """A GGUF base: llama.cpp's own checks (the tensor exists, A's and B's sides fit it), before writing."""
    if layout.gguf_tensors is None:
        return
    where = f"{layout.gguf}: {target}"
    if target not in layout.gguf_tensors:
        raise RunError(f"{where} does not exist in the base GGUF (tied embeddings?), so llama.cpp cannot apply "
                       "the adapter to it")
    ne = layout.gguf_tensors[target]
    if ne[0] != a.shape[1] or ne[1] != b.shape[0]:
        raise RunError(f"{where} is {ne[1]} x {ne[0]} in the base GGUF, the adapter's update is {b.shape[0]} x "
                       f"{a.shape[1]}", hint="pass the base the run trained on with --model")


def write_gguf_lora(lora: LoraTensors, out_file: Path, layout: BaseLayout, *, gguf_type: str, name: str) -> None:
    import gguf

    if gguf_type not in LORA_TYPES:
        raise ModelError(f"gguf type '{gguf_type}' is not one of {', '.join(LORA_TYPES)} for a GGUF LoRA adapter")
    writer = gguf.GGUFWriter(path=None, arch=layout.arch.gguf_name)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(lora.alpha))
    writer.add_name(name)
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, layout.name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if gguf_type == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    Q = gguf.GGMLQuantizationType
    for tensor_name, data in lora.tensors.items():
        if gguf_type == "f16":
            writer.add_tensor(tensor_name, data.astype(np.float16), raw_dtype=Q.F16)
        else:
            writer.add_tensor(tensor_name, data, raw_dtype=Q.F32)
    writer.write_header_to_file(path=out_file)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()


def read_back(file: Path, lora: LoraTensors, layout: BaseLayout) -> None:
    """A file that does not read back as written never lands in --out."""
    from mlxsft.models.gguf_read import read_fields

    fields, tensors = read_fields(file)
    ok = (fields.get("general.type") is not None and fields["general.type"].value == "adapter"
          and fields["general.architecture"].value == layout.arch.gguf_name
          and {t.name: t.shape for t in tensors} == {k: tuple(reversed(v.shape)) for k, v in lora.tensors.items()})
    if not ok:
        raise ModelError(f"{file.name}: the written adapter does not read back as written")


def export_gguf_lora(run: RunFolder, tmp: Path, layout: BaseLayout, lora: LoraTensors, *, gguf_type: str,
                     name: str, progress: Optional[Progress] = None) -> tuple[list[str], Any, list[str]]:
    """Write ``lora`` (``gguf_lora_tensors``), the run's chat template, a Modelfile and a card into the staging
    folder ``tmp``: (file names, the base's Stops, warnings)."""
    from mlxsft.export.adapter_format import adapter_card
    from mlxsft.export.modelfile import modelfile

    report = progress or (lambda stage, frac: None)
    file = f"{name}-lora-{gguf_type}.gguf"
    report("writing the GGUF adapter", 0.4)
    write_gguf_lora(lora, tmp / file, layout, gguf_type=gguf_type, name=name)
    read_back(tmp / file, lora, layout)
    report("writing the Modelfile", 0.7)
    tokenizer, template, stops = _base_chat(run)
    (tmp / "chat_template.jinja").write_text(template, encoding="utf-8")
    text, warnings = modelfile(layout.from_name, tokenizer, template, stops, name=name,
                               template_kwargs=run.template_kwargs, adapter=file, notes=[layout.note])
    (tmp / "Modelfile").write_text(text, encoding="utf-8")
    files = sorted([p.name for p in tmp.iterdir() if p.is_file()] + ["README.md"])
    card = adapter_card(run, "gguf-lora", layout.name, files, gguf_type, adapter_file=file,
                        base_gguf=layout.from_name, base_note=layout.note, alpha=lora.alpha, name=name)
    (tmp / "README.md").write_text(card, encoding="utf-8")
    report("done", 1.0)
    return files, stops, warnings


def _base_chat(run: RunFolder) -> tuple[Any, str, Any]:
    """The base's tokenizer, the run's chat template and where an answer stops (for the Modelfile)."""
    import json

    from mlxsft.data import resolve_chat_template
    from mlxsft.export.stops import eos_ids_of, find_stops
    from mlxsft.models import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(run.base_model)
    template = run.template or resolve_chat_template(tokenizer, None)
    generation = Path(resolve_model(run.base_model).path) / "generation_config.json"
    try:
        eos = eos_ids_of(json.loads(generation.read_text()) if generation.is_file() else None)
    except json.JSONDecodeError:
        eos = []
    return tokenizer, template, find_stops(tokenizer, template, run.template_kwargs, eos)


def _safe_file(name: str) -> str:
    """A file name that a Modelfile line holds as it is (no blank, quote or line end)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "base.gguf"
