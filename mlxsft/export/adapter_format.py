"""Export a run's LoRA / DoRA adapters as they are, not fused into the base: for PEFT or for mlx-lm.

    mlxsft export --run RUN --format peft --out DIR          # adapter_config.json + adapter_model.safetensors
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), DIR)
    mlxsft export --run RUN --format mlx-adapter --out DIR   # adapter_config.json + adapters.safetensors
    mlx_lm.load(BASE, adapter_path=DIR)

A run already in the asked format is copied: an MLX run's mlx-lm files byte for byte, a torch run's PEFT
tensors byte for byte with ``base_model_name_or_path`` in its config renamed (PEFT wrote the base's local
path there). The other direction is converted tensor by tensor with transposes only, so the numbers are
exactly the trained ones and MLX -> PEFT -> MLX gives back the same tensors. The export also holds the run's
``chat_template.jinja`` (the template the adapter learned to answer in) and a short model card (README.md).

The two conventions, for a linear layer ``W`` (out, in) and input ``x`` (…, in):

    mlx-lm  y = x W^T + scale * (x @ lora_a) @ lora_b     lora_a (in, r), lora_b (r, out)
    PEFT    y = x W^T + scaling * B(A(x))                 A.weight (r, in), B.weight (out, r)
            scaling = lora_alpha / r  (lora_alpha / sqrt(r) with use_rslora)

so A = lora_a^T, B = lora_b^T and ``lora_alpha = scale * r``. The classic pitfall is writing the scale as
``lora_alpha`` (or alpha as mlx-lm's ``scale``): the update comes out r times too large or too small, the model
still loads and generates, only worse. DoRA: both keep one magnitude per output row and compute
``y = m / ||W + scale * B A||_row * (x W^T + scale * x A^T B^T) + bias`` with the norm over the input axis
(mlx-lm ``norm(axis=1)`` of the (out, in) weight, PEFT ``norm(dim=1)``), so mlx-lm's ``m`` (out,) is PEFT's
``lora_magnitude_vector`` (out,) unchanged.

Names: PEFT keys are ``base_model.model.<module path>.lora_A.weight`` (``.lora_B.weight``,
``.lora_magnitude_vector``); mlx-lm's are ``<module path>.lora_a`` (``.lora_b``, ``.m``). For llama, qwen2 and
gemma3 mlx-lm keeps transformers' module paths (``model.layers.0.self_attn.q_proj``, see ``hf_format.py``), so
paths carry over unchanged; PEFT's ``target_modules`` lists the adapted modules by full path (as the torch
backend trains them), which also says which blocks are adapted. mlx-lm instead names block-relative ``keys``
and adapts the last ``num_layers`` blocks: mlxsft always adapts the last blocks, so the highest adapted index
is the model's last block and ``num_layers`` counts down to the lowest one.

``base_model_name_or_path`` is the base as the model card names it: a Hub id for a Hub base (loadable, so
``AutoPeftModelForCausalLM`` works), else the alias's or folder's name, never a local path. PEFT reads the field
only in ``AutoPeftModel*``; ``PeftModel.from_pretrained`` takes the base the caller loaded.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from mlxsft.errors import ConfigError, RunError
from mlxsft.runs.read import MLX_FILES, PEFT_FILES, RunFolder

if TYPE_CHECKING:
    from mlxsft.export.pipeline import ExportOptions

Progress = Callable[[str, float], None]
ADAPTER_FORMATS = ("peft", "mlx-adapter")
NATIVE = {"torch": "peft", "mlx": "mlx-adapter"}  # the format each backend's runs already hold
PEFT_PREFIX = "base_model.model."
# a module path inside the blocks: ``model.layers.3.self_attn.q_proj`` -> ("model.layers", 3, "self_attn.q_proj")
BLOCK_PATH = re.compile(r"^(?P<blocks>(?:.*?\.)?layers)\.(?P<index>\d+)\.(?P<key>.+)$")
MLX_TO_PEFT = {"lora_a": "lora_A.weight", "lora_b": "lora_B.weight", "m": "lora_magnitude_vector"}
PEFT_TO_MLX = {v: k for k, v in MLX_TO_PEFT.items()}
# PEFT options mlx-lm's LoRA layers cannot express: (config key, the value that is fine)
PEFT_UNSUPPORTED = (("bias", "none"), ("lora_bias", False), ("modules_to_save", None), ("rank_pattern", {}),
                    ("alpha_pattern", {}), ("fan_in_fan_out", False), ("layer_replication", None),
                    ("trainable_token_indices", None), ("target_parameters", None))


def check_adapter_options(opts: "ExportOptions") -> None:
    if opts.dtype is not None:
        raise ConfigError("--dtype applies to --format mlx and hf; an adapter export keeps the dtype it trained in")


def check_adapter_run(run: RunFolder, fmt: str) -> None:
    if run.method == "full":
        raise RunError(f"{run.weights_dir}: a full fine-tuning run has no adapter to export as {fmt}",
                       hint="export the whole tuned model with --format hf or --format mlx")


def adapter_warnings(run: RunFolder) -> list[str]:
    if run.config is not None and run.config.model.quantize:
        return [f"the adapter trained against a {run.config.model.quantize}-bit base: on a base that is not "
                "quantized the same way its outputs differ slightly from training"]
    return []


def write_adapter(run: RunFolder, tmp: Path, fmt: str, progress: Optional[Progress] = None) -> tuple[list[str], str]:
    """Write ``run``'s adapters into the staging folder ``tmp`` (``pipeline.staged_dir``) in format ``fmt``:
    (file names, precision)."""
    report = progress or (lambda stage, frac: None)
    check_adapter_run(run, fmt)
    base = base_name(run)
    report(f"writing {fmt}", 0.1)
    if fmt == NATIVE[run.backend]:
        _copy(run, tmp, base)
    elif fmt == "peft":
        tensors, config = mlx_to_peft(_load(run.weights_dir / MLX_FILES[0]), _config(run.weights_dir), base)
        _save(tmp, PEFT_FILES[0], tensors, config, metadata={"format": "pt"})
    else:
        tensors, config = peft_to_mlx(_load(run.weights_dir / PEFT_FILES[0]), _config(run.weights_dir))
        _save(tmp, MLX_FILES[0], tensors, config, metadata={"format": "mlx"})
    if run.template is not None:
        (tmp / "chat_template.jinja").write_text(run.template, encoding="utf-8")
    precision = _precision(tmp / (PEFT_FILES[0] if fmt == "peft" else MLX_FILES[0]))
    files = sorted([p.name for p in tmp.iterdir() if p.is_file()] + ["README.md"])
    (tmp / "README.md").write_text(adapter_card(run, fmt, base, files, precision), encoding="utf-8")
    report("done", 1.0)
    return files, precision


# ----------------------------------------------------------------------------- the two conversions
def mlx_to_peft(weights: dict[str, Any], config: dict[str, Any], base: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """mlx-lm adapter tensors + adapter_config.json -> PEFT's (``module.lora_a`` (in, r) -> ``lora_A.weight``
    (r, in), …, ``scale`` -> ``lora_alpha = scale * r``)."""
    fine_tune_type = str(config.get("fine_tune_type", "lora"))
    params = config.get("lora_parameters") or {}
    if "rank" not in params or "scale" not in params:
        raise RunError("adapter_config.json: no lora_parameters rank and scale (not an mlx-lm LoRA/DoRA adapter)")
    rank, scale = int(params["rank"]), float(params["scale"])
    modules = _modules(weights, MLX_TO_PEFT, "an mlx-lm adapter")
    _check_modules(modules, dora=fine_tune_type == "dora", a="lora_a", b="lora_b", m="m")
    tensors: dict[str, Any] = {}
    for module, leaves in modules.items():
        if leaves["lora_a"].shape[-1] != rank:
            raise RunError(f"{module}.lora_a: rank {leaves['lora_a'].shape[-1]}, the adapter config says {rank}")
        for leaf, t in leaves.items():
            tensors[f"{PEFT_PREFIX}{module}.{MLX_TO_PEFT[leaf]}"] = t if leaf == "m" else t.T
    alpha = scale * rank
    peft_config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base,
        "r": rank, "lora_alpha": int(alpha) if alpha == int(alpha) else alpha, "use_rslora": False,
        "lora_dropout": float(params.get("dropout", 0.0)), "target_modules": sorted(modules),
        "use_dora": fine_tune_type == "dora", "bias": "none", "lora_bias": False, "fan_in_fan_out": False,
        "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {}, "init_lora_weights": True,
        "inference_mode": True,
    }
    return tensors, peft_config


def peft_to_mlx(weights: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """PEFT LoRA/DoRA tensors + adapter_config.json -> mlx-lm's (the inverse of ``mlx_to_peft``)."""
    check_peft_config(config, "mlx-lm's format")
    rank = int(config["r"])
    scale = lora_scaling(config)
    dora = bool(config.get("use_dora"))
    modules = peft_modules(weights, dora=dora)
    tensors: dict[str, Any] = {}
    blocks: set[str] = set()
    indices: set[int] = set()
    keys: set[str] = set()
    for module, leaves in modules.items():
        match = BLOCK_PATH.match(module)
        if match is None:  # mlx-lm's adapter config only adapts modules inside the transformer blocks
            raise RunError(f"{module}: adapted outside the transformer blocks; mlx-lm's adapter format cannot "
                           "express it")
        blocks.add(match["blocks"])
        indices.add(int(match["index"]))
        keys.add(match["key"])
        if leaves["lora_A.weight"].shape[0] != rank:
            raise RunError(f"{module}.lora_A: rank {leaves['lora_A.weight'].shape[0]}, the adapter config says {rank}")
        for leaf, t in leaves.items():
            tensors[f"{module}.{PEFT_TO_MLX[leaf]}"] = t if leaf == "lora_magnitude_vector" else t.T
    if len(blocks) != 1:
        raise RunError(f"adapters in more than one list of blocks ({', '.join(sorted(blocks))}); mlx-lm's adapter "
                       "format adapts one")
    # mlx-lm adapts the last num_layers blocks and mlxsft trains the last ones, so the highest adapted index is the
    # model's last block. A (block, key) without tensors gets mlx-lm's fresh layer: lora_b = 0 (and DoRA's m the
    # weight's own norm), the identity.
    mlx_config = {
        "fine_tune_type": "dora" if dora else "lora",
        "num_layers": max(indices) + 1 - min(indices),
        "lora_parameters": {"rank": rank, "scale": scale, "dropout": float(config.get("lora_dropout", 0.0)),
                            "keys": sorted(keys)},
    }
    return tensors, mlx_config


def peft_adapter(run: RunFolder, target: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A LoRA/DoRA run's tensors and adapter_config.json in PEFT's convention, whichever backend trained it
    (mlx arrays; an MLX run's converted by ``mlx_to_peft``, a torch run's as PEFT saved them, its options
    checked against what ``target`` can express)."""
    if run.backend == "mlx":
        return mlx_to_peft(_load(run.weights_dir / MLX_FILES[0]), _config(run.weights_dir), base_name(run))
    config = _config(run.weights_dir)
    check_peft_config(config, target)
    return _load(run.weights_dir / PEFT_FILES[0]), config


def peft_modules(weights: dict[str, Any], *, dora: bool) -> dict[str, dict[str, Any]]:
    """PEFT tensors by module path without the ``base_model.model.`` prefix:
    ``{"model.layers.0.self_attn.q_proj": {"lora_A.weight": A, "lora_B.weight": B}}`` (+ DoRA's magnitude)."""
    stripped = {}
    for name, t in weights.items():
        if not name.startswith(PEFT_PREFIX):
            raise RunError(f"{name}: not a PEFT LoRA tensor of a causal LM (no '{PEFT_PREFIX}' prefix)")
        stripped[name[len(PEFT_PREFIX):]] = t
    modules = _modules(stripped, PEFT_TO_MLX, "a PEFT LoRA adapter")
    _check_modules(modules, dora=dora, a="lora_A.weight", b="lora_B.weight", m="lora_magnitude_vector")
    return modules


def check_peft_config(config: dict[str, Any], target: str) -> None:
    """Refuse what a plain per-layer ``scaling * B A`` (mlx-lm's layers, llama.cpp's) cannot express."""
    if config.get("peft_type", "LORA") != "LORA":
        raise RunError(f"a {config.get('peft_type')} adapter cannot be written in {target} (LoRA/DoRA only)")
    for key, fine in PEFT_UNSUPPORTED:
        if config.get(key, fine) not in (fine, None, [], {}):
            raise RunError(f"adapter_config.json: {key}={config[key]!r} cannot be written in {target}")
    if "r" not in config or "lora_alpha" not in config:
        raise RunError("adapter_config.json: no r and lora_alpha (not a PEFT LoRA adapter)")


def lora_scaling(config: dict[str, Any]) -> float:
    """What PEFT multiplies ``B A x`` by: ``lora_alpha / r``, or ``lora_alpha / sqrt(r)`` with use_rslora."""
    import math

    rank = int(config["r"])
    return float(config["lora_alpha"]) / (math.sqrt(rank) if config.get("use_rslora") else rank)


def _modules(weights: dict[str, Any], leaves: dict[str, str], what: str) -> dict[str, dict[str, Any]]:
    """{module path: {leaf: tensor}}, refusing a tensor that is not a LoRA/DoRA leaf."""
    out: dict[str, dict[str, Any]] = {}
    for name, t in weights.items():
        leaf = next((x for x in leaves if name.endswith("." + x)), None)
        if leaf is None:
            raise RunError(f"{name}: not a LoRA/DoRA tensor of {what}")
        if len(t.shape) != (1 if leaf in ("m", "lora_magnitude_vector") else 2):
            raise RunError(f"{name}: shape {tuple(t.shape)} is not a linear layer's LoRA/DoRA tensor")
        out.setdefault(name[:-len(leaf) - 1], {})[leaf] = t
    if not out:
        raise RunError(f"{what} without tensors")
    return out


def _check_modules(modules: dict[str, dict[str, Any]], *, dora: bool, a: str, b: str, m: str) -> None:
    want = {a, b, m} if dora else {a, b}
    for module, leaves in modules.items():
        if set(leaves) != want:
            raise RunError(f"{module}: has {', '.join(sorted(leaves))}, a {'DoRA' if dora else 'LoRA'} layer has "
                           f"{', '.join(sorted(want))}")


# ----------------------------------------------------------------------------- files
def base_name(run: RunFolder) -> str:
    """The base as the model card names it: a Hub id as typed, otherwise the alias's or folder's name."""
    from mlxsft.models import resolve_model

    source = resolve_model(run.base_model)
    return source.spec if source.kind == "hub" else source.name


def _copy(run: RunFolder, tmp: Path, base: str) -> None:
    if run.backend == "mlx":
        for name in MLX_FILES:
            shutil.copyfile(run.weights_dir / name, tmp / name)
        return
    shutil.copyfile(run.weights_dir / PEFT_FILES[0], tmp / PEFT_FILES[0])
    config = _config(run.weights_dir)
    config["base_model_name_or_path"] = base  # PEFT wrote the base's local path
    _write_json(tmp / "adapter_config.json", config)


def _load(path: Path) -> dict[str, Any]:
    import mlx.core as mx  # reads and writes bfloat16 too, which numpy cannot

    try:
        return dict(mx.load(str(path)))
    except (RuntimeError, ValueError) as e:
        raise RunError(f"{path}: cannot read the adapter tensors ({e})") from None


def _config(folder: Path) -> dict[str, Any]:
    from mlxsft.runs.read import read_json

    config = read_json(folder / "adapter_config.json")
    if config is None:
        raise RunError(f"{folder / 'adapter_config.json'}: invalid JSON")
    return config


def _save(tmp: Path, name: str, tensors: dict[str, Any], config: dict[str, Any], *, metadata: dict[str, str]) -> None:
    import mlx.core as mx

    # "pt": the safetensors flavour PEFT and transformers expect; mx.contiguous: transposes are views
    mx.save_safetensors(str(tmp / name), {k: mx.contiguous(v) for k, v in sorted(tensors.items())}, metadata=metadata)
    _write_json(tmp / "adapter_config.json", config)


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _precision(path: Path) -> str:
    import mlx.core as mx

    dtypes = sorted({str(v.dtype).rsplit(".", 1)[-1] for v in mx.load(str(path)).values()})
    return ", ".join(dtypes)


# ----------------------------------------------------------------------------- README.md
def adapter_card(run: RunFolder, fmt: str, base: str, files: list[str], precision: str, *, adapter_file: str = "",
                 base_gguf: str = "", base_note: str = "", alpha: Optional[float] = None, name: str = "") -> str:
    """A short model card: what the adapter is, what base it needs, and how to load it. gguf-lora: the
    adapter's file, the file name the Modelfile's FROM gives the base GGUF, what to say about it, its alpha,
    the export's name (the Ollama model's)."""
    from mlxsft.export.card import MARKER, _metrics, _method_name, _run_ref, _section, _yaml

    cfg = run.config
    tags = ["mlxsft", "sft", run.method, run.backend, fmt]
    library = {"peft": "peft", "mlx-adapter": "mlx", "gguf-lora": "gguf"}[fmt]
    front = ["---", f"base_model: {_yaml(base)}", f"library_name: {library}",
             "pipeline_tag: text-generation", "tags:", *[f"- {t}" for t in tags], "---", ""]
    what = {"peft": "a PEFT adapter (transformers)", "mlx-adapter": "an mlx-lm adapter",
            "gguf-lora": "a GGUF LoRA adapter (llama.cpp, Ollama)"}[fmt]
    body = [MARKER, "", f"# {run.name}", "",
            f"{_method_name(run)} adapter for **{base}**, trained with [mlxsft](https://pypi.org/project/mlxsft/) "
            f"({run.backend} backend) and exported as {what}, not merged: load it on top of the base.", ""]
    if cfg is not None and cfg.lora.method != "full":
        lo = cfg.lora
        body += _section("Method", [("method", _method_name(run)), ("rank", lo.rank), ("alpha", lo.alpha),
                                    ("scale (alpha / rank)", f"{lo.alpha / lo.rank:.4g}"),
                                    ("target modules", ", ".join(map(str, lo.target_modules))),
                                    ("layers adapted", "all" if lo.num_layers < 0 else f"last {lo.num_layers}"),
                                    ("quantized base in training", f"{cfg.model.quantize}-bit (QLoRA)"
                                     if cfg.model.quantize else None)])
    body += _section("Final metrics", _metrics(run.metrics))
    body += _section("This export", [("format", what), ("precision", precision),
                                     ("adapter.lora.alpha", f"{alpha:g} (llama.cpp scales by alpha / rank)"
                                      if alpha is not None else None),
                                     ("files", ", ".join(f"`{f}`" for f in files)),
                                     ("chat template", "`chat_template.jinja`, the one the run trained with"
                                      if "chat_template.jinja" in files else None),
                                     ("from run", _run_ref(run))])
    if fmt == "peft":
        use = ["```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM", "",
               f"base = AutoModelForCausalLM.from_pretrained({base!r})  # the base the adapter was trained on",
               "model = PeftModel.from_pretrained(base, '.')",
               "```"]
    elif fmt == "gguf-lora":
        ollama = (name or run.name).lower()
        use = [f"**The base model's GGUF.** {base_note}", "",
               "```bash", f"ollama create {ollama} -f Modelfile && ollama run {ollama}",
               f"llama-cli -m {base_gguf} --lora {adapter_file} --jinja --chat-template-file chat_template.jinja",
               "```"]
    else:
        use = ["```bash", f"mlx_lm.generate --model {base} --adapter-path . --prompt 'Hello'  # --model: the base",
               "```"]
    return "\n".join(front + body + ["## Use", "", *use, ""])
