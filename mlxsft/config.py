"""Typed configuration: dataclasses, YAML files and CLI overrides.

Precedence: CLI flag > YAML file > dataclass default. A YAML file may be nested by section
(``model:``, ``data:``, ``lora:``, ``optim:``, ``train:``) or flat; every field name is unique
across sections, so ``--learning-rate 1e-4`` and ``learning_rate: 1e-4`` need no section.
The resolved config is saved in each run folder (``config.yaml``) and hashed so a resume can
check it continues the same job.

    from mlxsft.config import load_config
    cfg = load_config("configs/lora.yaml", {"iters": 100})
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mlxsft.errors import ConfigError


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None, **kw: Any) -> Any:
    """A dataclass field carrying its CLI help text (and allowed values)."""
    meta = {"help": help, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class ModelConfig:
    model: str = _f("smollm2-135m-instruct", "Model: alias, local HF/MLX folder, .gguf file or Hub id.")
    dtype: str = _f("float32", "Weight dtype of the trained model.", ("float32", "float16", "bfloat16"))
    quantize: Optional[int] = _f(None, "Quantize the base to 4 or 8 bits at load time (QLoRA).")
    group_size: int = _f(64, "Quantization group size.")
    trust_remote_code: bool = _f(False, "Allow model code from the Hub (off by default).")


@dataclass
class DataConfig:
    data: Optional[str] = _f(None, "Dataset: file, folder with train/valid files, or Hub id. Default: bundled.")
    format: str = _f("auto", "Row format.", ("auto", "messages", "prompt_completion", "text", "sharegpt", "alpaca"))
    columns: dict = _f({}, "Column mapping, e.g. {messages: conversation}.")
    train_split: str = _f("train", "Split used for training.")
    valid_split: str = _f("valid", "Split used for validation.")
    chat_template: Optional[str] = _f(None, "A .jinja chat template that overrides the tokenizer's.")
    chat_template_kwargs: dict = _f({}, "Extra variables for the chat template, e.g. {enable_thinking: false}.")
    train_on: str = _f("assistant", "Supervised tokens.", ("assistant", "last", "all"))
    max_seq_len: int = _f(512, "Maximum tokens per row (and per packed sequence).")
    overlong: str = _f("truncate", "What to do with rows over max_seq_len.", ("truncate", "drop"))
    pack: bool = _f(False, "Pack several rows per sequence (block-diagonal attention, no cross-talk).")
    max_rows: Optional[int] = _f(None, "Use at most this many training rows.")


@dataclass
class LoraConfig:
    method: str = _f("lora", "Fine-tuning method.", ("lora", "dora", "full"))
    rank: int = _f(8, "LoRA rank r.")
    alpha: float = _f(16.0, "LoRA alpha; the update is scaled by alpha / rank.")
    dropout: float = _f(0.0, "LoRA dropout.")
    target_modules: list = _f(["all-linear"], "Modules to adapt: names (q_proj, v_proj, ...) or all-linear.")
    num_layers: int = _f(16, "Adapt the last N transformer layers (-1 = all); no backward pass runs below them.")
    train_embeddings: bool = _f(False, "Full fine-tuning: also train embeddings and lm_head.")


@dataclass
class OptimConfig:
    optimizer: str = _f("adamw", "Optimizer.", ("adamw", "adam", "sgd", "adafactor", "muon"))
    learning_rate: float = _f(1e-3, "Peak learning rate.")
    weight_decay: float = _f(0.0, "Weight decay.")
    lr_schedule: str = _f("cosine", "Learning-rate schedule after warmup.", ("constant", "linear", "cosine"))
    warmup: float = _f(0.05, "Warmup: steps if >= 1, else a fraction of all steps.")
    min_lr_ratio: float = _f(0.0, "Final learning rate as a fraction of the peak (linear/cosine).")
    max_grad_norm: float = _f(1.0, "Clip gradients to this global norm (0 = off).")
    momentum: float = _f(0.9, "Momentum (sgd, muon).")


@dataclass
class TrainConfig:
    backend: str = _f("mlx", "Training backend.", ("mlx", "torch", "auto"))
    device: str = _f("auto", "Torch device (backend torch).", ("auto", "mps", "cuda", "cpu"))
    fsdp: bool = _f(False, "Shard weights, gradients and optimizer state over the torchrun processes "
                           "(FSDP; backend torch, full fine-tuning).")
    epochs: Optional[float] = _f(None, "Train for this many epochs (default 1 unless --iters).")
    iters: Optional[int] = _f(None, "Train for this many optimizer steps (overrides --epochs).")
    batch_size: int = _f(8, "Rows (or packed sequences) per batch.")
    grad_accum: int = _f(1, "Batches per optimizer step.")
    micro_batch_tokens: Optional[int] = _f(None, "Run each batch in pieces of at most this many tokens (rows x "
                                                 "padded length); the update is unchanged, memory drops (0 = whole "
                                                 "batches; default: 1024 on a CPU, whole batches on a GPU).")
    grad_checkpoint: bool = _f(False, "Recompute activations in the backward pass to save memory.")
    compile: bool = _f(True, "Compile the training step (mx.compile).")
    seed: int = _f(0, "Random seed (data order, init, dropout).")
    eval_every: int = _f(20, "Validate every N steps (0 = only at the end).")
    eval_batches: int = _f(0, "Validation batches per evaluation (0 = the whole split).")
    save_every: int = _f(20, "Checkpoint every N steps (0 = only at the end).")
    early_stop: Optional[int] = _f(None, "Stop after N evaluations without a better val loss.")
    report_every: int = _f(5, "Log train metrics every N steps.")
    out: Optional[str] = _f(None, "Run folder (default runs/<name>-<time>).")
    name: str = _f("sft", "Run name used in the default run folder.")
    compare: bool = _f(True, "Ask base and tuned model the held-out questions at the end.")
    compare_questions: Optional[str] = _f(None, "Questions file for the before/after table (default: bundled eval).")
    compare_max_tokens: int = _f(32, "Max new tokens per answer in the before/after table.")
    compare_limit: Optional[int] = _f(None, "Ask at most this many questions in the before/after table.")
    force: bool = _f(False, "Start even if the memory estimate exceeds the machine's memory.")
    skip_nonfinite: int = _f(0, "Skip up to N optimizer steps whose loss or gradients are NaN/inf "
                                "(0 = stop at the first, keeping the last checkpoint).")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def hash(self, exclude: tuple[str, ...] = ("out", "iters", "epochs", "force", "compare", "eval_every",
                                              "save_every", "report_every", "early_stop", "device", "compare_limit",
                                              "compare_questions", "compare_max_tokens", "skip_nonfinite",
                                              "fsdp")) -> str:
        """A hash of what decides the trained weights (resume refuses a different job)."""
        flat = {k: v for k, v in flat_fields(self).items() if k not in exclude}
        return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        import yaml

        from mlxsft.runs import atomic_write_text

        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))  # a kill never leaves half


SECTIONS = ("model", "data", "lora", "optim", "train")


def field_index() -> dict[str, tuple[str, dataclasses.Field]]:
    """Every config field name -> (section, Field). Names are unique across sections."""
    index: dict[str, tuple[str, dataclasses.Field]] = {}
    for sec in SECTIONS:
        cls = typing.get_type_hints(Config)[sec]
        for f in dataclasses.fields(cls):
            assert f.name not in index, f"duplicate config field {f.name}"
            index[f.name] = (sec, f)
    return index


def flat_fields(cfg: Config) -> dict[str, Any]:
    return {name: getattr(getattr(cfg, sec), name) for name, (sec, _) in field_index().items()}


def _field_type(sec: str, name: str) -> Any:
    cls = typing.get_type_hints(Config)[sec]
    return typing.get_type_hints(cls)[name]


def coerce(name: str, value: Any, where: str = "") -> Any:
    """Check and convert one value to its field's type; ConfigError names the field."""
    index = field_index()
    if name not in index:
        raise ConfigError(f"{where}unknown config field '{name}'")
    sec, f = index[name]
    typ = _field_type(sec, name)
    optional = typing.get_origin(typ) is typing.Union and type(None) in typing.get_args(typ)
    base = next((a for a in typing.get_args(typ) if a is not type(None)), typ) if optional else typ
    base = typing.get_origin(base) or base
    if value is None or (isinstance(value, str) and optional and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ConfigError(f"{where}{name}: a value is required")
    try:
        if base is bool:
            if isinstance(value, str):
                low = value.lower()
                if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(value)
                value = low in ("true", "1", "yes", "on")
            elif not isinstance(value, bool):
                raise ValueError(value)
        elif base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            value = int(value)
        elif base is float:
            if isinstance(value, bool):
                raise ValueError(value)
            value = float(value)
        elif base is str:
            value = str(value)
        elif base is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            value = list(value)
        elif base is dict:
            if isinstance(value, str):
                value = _parse_mapping(value)
            if not isinstance(value, dict):
                raise ValueError(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}{name}: expected {getattr(base, '__name__', base)}, got {value!r}") from None
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{where}{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def _parse_mapping(text: str) -> dict:
    """Parse ``a=1,b=x`` or a JSON/YAML mapping given on the command line."""
    import yaml

    text = text.strip()
    if text.startswith("{"):
        out = yaml.safe_load(text)
    else:
        out = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "=" not in part:
                raise ValueError(text)
            k, v = part.split("=", 1)
            out[k.strip()] = yaml.safe_load(v.strip())
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the YAML file, then the overrides (flat field names)."""
    import yaml

    cfg = Config()
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{p}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping of config fields")
        for key, val in raw.items():
            if key in SECTIONS and isinstance(val, dict):
                for k, v in val.items():
                    if k not in field_index() or field_index()[k][0] != key:
                        raise ConfigError(f"{p}: unknown config field '{key}.{k}'")
                    values[k] = coerce(k, v, f"{p}: ")
            else:
                values[key] = coerce(key, val, f"{p}: ")
    for k, v in (overrides or {}).items():
        values[k] = coerce(k, v)
    index = field_index()
    for k, v in values.items():
        setattr(getattr(cfg, index[k][0]), k, v)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Cross-field checks that a type alone cannot express."""
    t, o, l, d = cfg.train, cfg.optim, cfg.lora, cfg.data
    checks = [
        (t.batch_size >= 1, "batch_size: must be >= 1"),
        (t.grad_accum >= 1, "grad_accum: must be >= 1"),
        (t.micro_batch_tokens is None or t.micro_batch_tokens >= 0, "micro_batch_tokens: must be >= 0 (0 = no split)"),
        (t.iters is None or t.iters >= 1, "iters: must be >= 1"),
        (t.epochs is None or t.epochs > 0, "epochs: must be > 0"),
        (o.learning_rate > 0, "learning_rate: must be > 0"),
        (o.warmup >= 0, "warmup: must be >= 0"),
        (l.rank >= 1, "rank: must be >= 1"),
        (0 <= l.dropout < 1, "dropout: must be in [0, 1)"),
        (d.max_seq_len >= 8, "max_seq_len: must be >= 8"),
        (cfg.model.quantize in (None, 2, 3, 4, 6, 8), "quantize: must be 4 or 8 (or 2, 3, 6)"),
        (t.eval_every >= 0 and t.save_every >= 0, "eval_every/save_every: must be >= 0"),
        (t.skip_nonfinite >= 0, "skip_nonfinite: must be >= 0"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
