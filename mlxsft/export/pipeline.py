"""``mlxsft export`` as a library call: read the run, fuse, write one format, add the model card, all or nothing.

    from mlxsft.export import ExportOptions, export_run
    result = export_run(ExportOptions(run="runs/sft-…", format="gguf", out="exports/my-gguf", gguf_type="q8_0"))
    result.files     # ['README.md', 'Modelfile', 'sft-…-q8_0.gguf']

Order of work: options and the run folder are checked first (milliseconds), then ``--out`` (never the run or
the base model), then for GGUF whether the base architecture can be written at all — all before the model is
loaded. The export is built in a hidden temporary folder beside ``--out`` and renamed into place at the end,
so a failure or Ctrl-C leaves ``--out`` as it was (absent, empty, or with ``--overwrite`` the old export).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from mlxsft.errors import ConfigError, ModelError, RunError
from mlxsft.runs.read import RunFolder
from mlxsft.export.stops import Stops
from mlxsft.export.adapter_format import ADAPTER_FORMATS

Progress = Callable[[str, float], None]
# peft / mlx-adapter: the adapters unfused (adapter_format.py); gguf-lora: for llama.cpp / Ollama (gguf_lora.py)
FORMATS = ("mlx", "hf", "gguf") + ADAPTER_FORMATS + ("gguf-lora",)
DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class ExportOptions:
    run: str
    format: str
    out: str
    dtype: Optional[str] = None  # mlx / hf; default: the dtype the run trained in
    quantize: Optional[int] = None  # mlx only: 4 or 8 bits after fusing
    group_size: int = 64
    gguf_type: Optional[str] = None  # gguf: f16 (default) | q8_0 | f32; gguf-lora: f32 (default) | f16
    model: Optional[str] = None  # base model, instead of the one the run names
    name: Optional[str] = None  # model name in file names and metadata; default: the run folder's name
    overwrite: bool = False
    trust_remote_code: bool = False  # let the base model's own code run (mlx-lm model_file, HF auto_map)


@dataclass
class ExportResult:
    out: Path
    format: str
    name: str  # the model name in file names and metadata
    run: RunFolder
    stops: Stops
    precision: str
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    size_bytes: int = 0
    base_gguf: Optional[Path] = None  # gguf-lora: the base's own GGUF on this machine (the Modelfile names it)
    base_from: str = ""  # gguf-lora: the file name the Modelfile's FROM gives the base GGUF


def export_run(opts: ExportOptions, progress: Optional[Progress] = None) -> ExportResult:
    from mlxsft.export.fuse import fuse_run
    from mlxsft.export.stops import eos_ids_of, find_stops

    report = progress or (lambda stage, frac: None)
    check_options(opts)
    run = RunFolder.open(opts.run, opts.model, purpose="export")
    out = Path(opts.out).expanduser().absolute()
    check_out(out, run, overwrite=opts.overwrite)
    if opts.format in ADAPTER_FORMATS:  # the adapters as they are: no base to load, nothing to fuse
        from mlxsft.export.adapter_format import adapter_warnings, check_adapter_run, write_adapter

        check_adapter_run(run, opts.format)
        result = ExportResult(out=out, format=opts.format, name=_safe_name(opts.name or run.name), run=run,
                              stops=Stops(eos_id=None, eot_id=None, eot_text=""), precision="",
                              warnings=adapter_warnings(run))
        with staged_dir(out, overwrite=opts.overwrite) as tmp:
            result.files, result.precision = write_adapter(run, tmp, opts.format, report)
            result.size_bytes = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        return result
    if opts.format == "gguf-lora":
        return _export_gguf_lora(run, out, opts, report)
    if opts.format == "gguf":
        precheck_gguf(run)

    fused = fuse_run(run, _span(report, 0.0, 0.5), trust_remote_code=opts.trust_remote_code)
    template = run.template or _tokenizer_template(fused.hf_tokenizer)
    stops = find_stops(fused.hf_tokenizer, template, run.template_kwargs, eos_ids_of(fused.generation_config))
    name = _safe_name(opts.name or run.name)
    dtype = opts.dtype or (run.config.model.dtype if run.config else "float32")
    result = ExportResult(out=out, format=opts.format, name=name, run=run, stops=stops,
                          precision=_precision(opts, dtype))
    if not stops.eot_is_token:
        result.warnings.append(f"the end of turn '{stops.eot_text}' is not a single token: runtimes that stop only "
                               "at token ids (mlx-lm, llama.cpp) stop at EOS; transformers' stop_strings and the "
                               "Ollama stop parameter stop at the text")

    with staged_dir(out, overwrite=opts.overwrite) as tmp:
        scratch = tmp / ".scratch"
        scratch.mkdir()
        write = _span(report, 0.5, 0.95)
        write(f"writing {opts.format}", 0.0)
        if opts.format == "hf":
            from mlxsft.export.hf_format import write_hf

            write_hf(fused, tmp, dtype=dtype, template=template, stops=stops)
        elif opts.format == "mlx":
            from mlxsft.export.mlx_format import write_mlx_folder

            write_mlx_folder(fused, tmp, dtype=dtype, quantize=opts.quantize, group_size=opts.group_size,
                             template=template, stops=stops, scratch=scratch)
        else:
            result.warnings += _write_gguf_export(fused, run, tmp, scratch, opts, name, template, stops, write)
        shutil.rmtree(scratch)
        _write_card(run, fused, tmp, opts, result)
        result.files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        result.size_bytes = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
    report("done", 1.0)
    return result


def check_options(opts: ExportOptions) -> None:
    if opts.format not in FORMATS:
        raise ConfigError(f"format: '{opts.format}' is not one of {', '.join(FORMATS)}")
    if opts.dtype is not None and opts.dtype not in DTYPES:
        raise ConfigError(f"dtype: '{opts.dtype}' is not one of {', '.join(DTYPES)}")
    if opts.quantize is not None:
        if opts.format != "mlx":
            raise ConfigError("--quantize applies to --format mlx; GGUF uses --gguf-type f16|q8_0")
        if opts.quantize not in (4, 8):
            raise ConfigError(f"quantize: {opts.quantize} bits is not supported (use 4 or 8)")
    if opts.group_size not in (32, 64, 128):
        raise ConfigError(f"group size {opts.group_size} is not supported (use 32, 64 or 128)")
    from mlxsft.export.gguf_format import GGUF_TYPES

    from mlxsft.export.gguf_lora import LORA_TYPES

    if opts.format in ADAPTER_FORMATS + ("gguf-lora",):
        from mlxsft.export.adapter_format import check_adapter_options

        check_adapter_options(opts)
    if opts.format == "gguf":
        if opts.dtype is not None:
            raise ConfigError("--dtype applies to --format mlx and hf; GGUF uses --gguf-type f16|q8_0|f32")
        if gguf_type_of(opts) not in GGUF_TYPES:
            raise ConfigError(f"gguf type '{opts.gguf_type}' is not one of {', '.join(GGUF_TYPES)}")
    elif opts.format == "gguf-lora":
        if gguf_type_of(opts) not in LORA_TYPES:
            raise ConfigError(f"gguf type '{opts.gguf_type}' is not one of {', '.join(LORA_TYPES)} for a GGUF "
                              "LoRA adapter")
    elif opts.gguf_type is not None:
        raise ConfigError("--gguf-type applies to --format gguf and gguf-lora")


def gguf_type_of(opts: ExportOptions) -> str:
    """--gguf-type, or its default: f16 for a whole model, f32 for a LoRA adapter (small, and exact)."""
    from mlxsft.export.gguf_lora import DEFAULT_TYPE

    if opts.gguf_type is not None:
        return opts.gguf_type
    return DEFAULT_TYPE if opts.format == "gguf-lora" else "f16"


def check_out(out: Path, run: RunFolder, *, overwrite: bool) -> None:
    """``--out`` must be new or empty (or, with --overwrite, an old export), and never hold the run or the base."""
    from mlxsft.export.card import MARKER
    from mlxsft.models import resolve_model

    if out.is_file():
        raise RunError(f"{out}: --out exists and is a file; choose a folder")
    protected = [run.run_dir.resolve(), run.weights_dir.resolve(), resolve_model(run.base_model).path.resolve()]
    target = out.resolve()
    for p in protected:
        if target == p or target in p.parents:
            raise RunError(f"{out}: --out would contain {p}; choose a new folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise RunError(f"{out}: --out is not empty", hint="choose a new folder, or pass --overwrite to replace it")
        card = out / "README.md"
        if not (card.is_file() and MARKER in card.read_text(encoding="utf-8", errors="replace")):
            raise RunError(f"{out}: --overwrite replaces only an earlier mlxsft export, and this folder is not one")


def precheck_gguf(run: RunFolder) -> None:
    """Refuse an architecture GGUF export cannot write before loading anything."""
    from mlxsft.export.gguf_format import ARCHS, GGUF_TO_MODEL_TYPE, check_gguf_config
    from mlxsft.models import resolve_model
    from mlxsft.models.checks import read_config

    source = resolve_model(run.base_model)
    if source.format == "gguf":
        from mlxsft.models.gguf_read import read_gguf

        arch = read_gguf(Path(source.path)).architecture or "?"
        model_type = GGUF_TO_MODEL_TYPE.get(arch, arch)
        if model_type not in ARCHS:
            check_gguf_config({"model_type": model_type}, str(source.path))
        return  # its full config is checked once transformers has read it, before anything is written
    check_gguf_config(read_config(source.path), str(source.path))


def _write_gguf_export(fused: Any, run: RunFolder, tmp: Path, scratch: Path, opts: ExportOptions, name: str,
                       template: str, stops: Stops, report: Progress) -> list[str]:
    from mlxsft.export.gguf_format import write_gguf
    from mlxsft.models.gguf_read import read_gguf
    from mlxsft.export.hf_format import write_hf
    from mlxsft.export.modelfile import modelfile

    hf = scratch / "hf"
    hf.mkdir()
    write_hf(fused, hf, dtype="float32", template=template, stops=stops)
    gguf_type = gguf_type_of(opts)
    gguf_name = f"{name}-{gguf_type}.gguf"
    source = fused.source.path if fused.source.format == "gguf" else None
    warnings = write_gguf(hf, tmp / gguf_name, gguf_type=gguf_type, template=template, stops=stops, name=name,
                          source_gguf=source, progress=report)
    summary = read_gguf(tmp / gguf_name)  # read back: a file that does not parse never lands in --out
    if summary.chat_template != template or summary.tensors == 0:
        raise ModelError(f"{gguf_name}: the written file does not read back as written")
    text, more = modelfile(gguf_name, fused.hf_tokenizer, template, stops, name=name,
                           template_kwargs=run.template_kwargs)
    (tmp / "Modelfile").write_text(text, encoding="utf-8")
    return warnings + more


def _export_gguf_lora(run: RunFolder, out: Path, opts: ExportOptions, report: Progress) -> ExportResult:
    from mlxsft.export.adapter_format import adapter_warnings
    from mlxsft.export.gguf_lora import check_gguf_lora_run, export_gguf_lora, gguf_lora_tensors

    layout = check_gguf_lora_run(run)  # DoRA, the architecture
    lora = gguf_lora_tensors(run, layout)  # converted, and checked against a GGUF base's tensors
    result = ExportResult(out=out, format=opts.format, name=_safe_name(opts.name or run.name), run=run,
                          stops=Stops(eos_id=None, eot_id=None, eot_text=""), precision=gguf_type_of(opts),
                          warnings=adapter_warnings(run), base_gguf=layout.gguf, base_from=layout.from_name)
    with staged_dir(out, overwrite=opts.overwrite) as tmp:
        result.files, result.stops, more = export_gguf_lora(run, tmp, layout, lora, gguf_type=result.precision,
                                                            name=result.name, progress=report)
        result.warnings += more
        result.size_bytes = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
    return result


def _write_card(run: RunFolder, fused: Any, tmp: Path, opts: ExportOptions, result: ExportResult) -> None:
    from mlxsft.export.card import CardExport, model_card

    files = sorted(p.name for p in tmp.iterdir() if p.is_file() and p.name != "README.md") + ["README.md"]
    source = fused.source  # a Hub model by its id (what the Hub links base_model to), others by name, never a path
    base_name = source.spec if source.kind == "hub" else source.name
    card = CardExport(format=opts.format, precision=result.precision, stops=result.stops, files=files,
                      base_name=base_name or "")
    (tmp / "README.md").write_text(model_card(run, card), encoding="utf-8")


@contextmanager
def staged_dir(final: Path, *, overwrite: bool) -> Iterator[Path]:
    """A temp folder that becomes ``final`` on success; with ``overwrite`` an old ``final`` is replaced only then."""
    from mlxsft.files import atomic_dir

    if not (final.is_dir() and any(final.iterdir())):
        with atomic_dir(final) as tmp:
            yield tmp
        return
    if not overwrite:
        raise RunError(f"{final}: --out is not empty", hint="pass --overwrite to replace it")
    from mlxsft.files import sync_dir, sync_tree

    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        sync_tree(tmp)  # the new export is on disk before the old one goes (power loss)
        os.chmod(tmp, 0o777 & ~_umask())
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, old)
        try:
            os.rename(tmp, final)
        except OSError:
            os.rename(old, final)
            raise
        sync_dir(final.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tokenizer_template(hf_tokenizer: Any) -> str:
    from mlxsft.data import resolve_chat_template

    return resolve_chat_template(hf_tokenizer, None)


def _precision(opts: ExportOptions, dtype: str) -> str:
    if opts.format in ("gguf", "gguf-lora"):
        return gguf_type_of(opts)
    if opts.format == "mlx" and opts.quantize:
        return f"{opts.quantize}-bit (group size {opts.group_size}), {dtype} scales"
    return dtype


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


def _span(report: Progress, lo: float, hi: float) -> Progress:
    return lambda stage, frac: report(stage, lo + (hi - lo) * max(0.0, min(1.0, frac)))
