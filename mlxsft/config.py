"""Typed configuration: dataclasses, YAML files and CLI overrides.

Precedence: CLI flag > YAML file > dataclass default. A YAML file may be nested by section
(``model:``, ``data:``, ``lora:``, ``optim:``, ``train:``) or flat; every field name is unique
across sections, so ``--learning-rate 1e-4`` and ``learning_rate: 1e-4`` need no section.
The resolved config is saved in each run folder (``config.yaml``) and hashed so a resume can
check it continues the same job. Every number has a range declared next to its field; a value outside
it (nan and inf included) is a one-line ConfigError. ``trust_remote_code`` is taken from the command
line only, never from a file.

    from mlxsft.config import load_config
    cfg = load_config("configs/lora.yaml", {"iters": 100})
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mlxsft.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """The numbers a field accepts: finite values from ``lo`` to ``hi`` (either end open or absent), or only the
    values in ``only``; ``also`` adds special values outside the interval (``num_layers: -1`` = all)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    only: tuple[int, ...] = ()
    also: tuple[int, ...] = ()

    def __contains__(self, value: float) -> bool:
        if value in self.also:
            return True
        if not math.isfinite(value):  # nan and inf pass no comparison a schedule or a loop relies on
            return False
        if self.only:
            return value in self.only
        return ((self.lo is None or value > self.lo or (value == self.lo and not self.lo_open))
                and (self.hi is None or value < self.hi or (value == self.hi and not self.hi_open)))

    def __str__(self) -> str:
        if self.only:
            text = "one of " + ", ".join(map(_num, self.only))
        elif self.hi is None:
            text = f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        else:
            text = f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        return " or ".join([*map(_num, self.also), text])


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def at_least(lo: float) -> Range:
    return Range(lo=lo)


def above(lo: float) -> Range:
    return Range(lo=lo, lo_open=True)


def between(lo: float, hi: float, *, hi_open: bool = False) -> Range:
    return Range(lo=lo, hi=hi, hi_open=hi_open)


def one_of(*values: int) -> Range:
    return Range(only=values)


QUANTIZE_BITS = (2, 3, 4, 5, 6, 8)  # what mx.quantize supports (affine mode) and models.convert accepts
GROUP_SIZES = (32, 64, 128)
SEED_MAX = 2**32 - 1  # the data order keeps 32 bits of the seed (numpy); mx.random.seed refuses negatives
TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio")  # --report-to; each is a module of mlxsft/trackers/


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None, range: Range | None = None,
       **kw: Any) -> Any:
    """A dataclass field carrying its CLI help text (and allowed values; every number has a ``range``)."""
    meta = {"help": help, "choices": choices, "range": range}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class ModelConfig:
    model: str = _f("gemma3-270m", "Model: alias, local HF/MLX folder, .gguf file or Hub id.")
    dtype: str = _f("float32", "Weight dtype of the trained model.", ("float32", "float16", "bfloat16"))
    quantize: Optional[int] = _f(None, "Quantize the base to 4 or 8 bits at load time (QLoRA).",
                                  range=one_of(*QUANTIZE_BITS))
    group_size: int = _f(64, "Quantization group size.", range=one_of(*GROUP_SIZES))
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
    max_seq_len: int = _f(512, "Maximum tokens per row (and per packed sequence).", range=at_least(8))
    overlong: str = _f("truncate", "What to do with rows over max_seq_len.", ("truncate", "drop"))
    pack: bool = _f(False, "Pack several rows per sequence (block-diagonal attention, no cross-talk).")
    max_rows: Optional[int] = _f(None, "Use at most this many training rows.", range=at_least(1))


@dataclass
class LoraConfig:
    method: str = _f("lora", "Fine-tuning method.", ("lora", "dora", "full"))
    rank: int = _f(8, "LoRA rank r.", range=at_least(1))
    alpha: float = _f(16.0, "LoRA alpha; the update is scaled by alpha / rank.", range=above(0))
    dropout: float = _f(0.0, "LoRA dropout.", range=between(0, 1, hi_open=True))
    target_modules: list = _f(["all-linear"], "Modules to adapt: names (q_proj, v_proj, ...) or all-linear.")
    num_layers: int = _f(16, "Adapt the last N transformer layers (-1 = all); no backward pass runs below them.",
                          range=Range(lo=1, also=(-1,)))
    train_embeddings: bool = _f(False, "Full fine-tuning: also train embeddings and lm_head.")


@dataclass
class OptimConfig:
    optimizer: str = _f("adamw", "Optimizer.", ("adamw", "adam", "sgd", "adafactor", "muon"))
    learning_rate: float = _f(1e-3, "Peak learning rate.", range=above(0))
    weight_decay: float = _f(0.0, "Weight decay.", range=at_least(0))
    lr_schedule: str = _f("cosine", "Learning-rate schedule after warmup.", ("constant", "linear", "cosine"))
    warmup: float = _f(0.05, "Warmup: steps if >= 1, else a fraction of all steps.", range=at_least(0))
    min_lr_ratio: float = _f(0.0, "Final learning rate as a fraction of the peak (linear/cosine).",
                              range=between(0, 1))
    max_grad_norm: float = _f(1.0, "Clip gradients to this global norm (0 = off).", range=at_least(0))
    momentum: float = _f(0.9, "Momentum (sgd, muon).", range=between(0, 1, hi_open=True))


@dataclass
class TrainConfig:
    backend: str = _f("auto", "Training backend (auto: mlx on Apple Silicon, else the faster one here; "
                              "`mlxsft doctor` says which).", ("mlx", "torch", "auto"))
    device: str = _f("auto", "Torch device (backend torch).", ("auto", "mps", "cuda", "cpu"))
    fsdp: bool = _f(False, "Shard weights, gradients and optimizer state over the torchrun processes "
                           "(FSDP; backend torch, full fine-tuning).")
    epochs: Optional[float] = _f(None, "Train for this many epochs (default 1 unless --iters).", range=above(0))
    iters: Optional[int] = _f(None, "Train for this many optimizer steps (overrides --epochs).", range=at_least(1))
    batch_size: int = _f(8, "Rows (or packed sequences) per batch.", range=at_least(1))
    grad_accum: int = _f(1, "Batches per optimizer step.", range=at_least(1))
    micro_batch_tokens: Optional[int] = _f(None, "Run each batch in pieces of at most this many tokens (rows x "
                                                 "padded length); the update is unchanged, memory drops (0 = whole "
                                                 "batches; default: 1024 on a CPU, whole batches on a GPU).",
                                             range=at_least(0))
    grad_checkpoint: bool = _f(False, "Recompute activations in the backward pass to save memory.")
    compile: bool = _f(True, "Compile the training step (mx.compile).")
    seed: int = _f(0, "Random seed (data order, init, dropout).", range=between(0, SEED_MAX))
    eval_every: int = _f(20, "Validate every N steps (0 = only at the end).", range=at_least(0))
    eval_batches: int = _f(0, "Validation batches per evaluation (0 = the whole split).", range=at_least(0))
    save_every: int = _f(20, "Checkpoint every N steps (0 = only at the end).", range=at_least(0))
    early_stop: Optional[int] = _f(None, "Stop after N evaluations without a better val loss.", range=at_least(1))
    report_every: int = _f(5, "Log train metrics every N steps.", range=at_least(1))
    out: Optional[str] = _f(None, "Run folder (default runs/<name>-<time>).")
    name: str = _f("sft", "Run name used in the default run folder.")
    compare: bool = _f(True, "Ask base and tuned model the held-out questions at the end.")
    compare_questions: Optional[str] = _f(None, "Questions file for the before/after table (default: bundled eval).")
    compare_max_tokens: int = _f(32, "Max new tokens per answer in the before/after table.", range=at_least(1))
    compare_limit: Optional[int] = _f(None, "Ask at most this many questions in the before/after table.",
                                      range=at_least(1))
    forgetting: bool = _f(True, "With the before/after table, measure the forgetting score: KL(base || tuned) "
                                "per token on the base's answers to general prompts.")
    forgetting_prompts: Optional[str] = _f(None, "Questions file of general prompts for the forgetting score "
                                                 "(default: the bundled ones).")
    force: bool = _f(False, "Start even if the memory estimate exceeds the machine's memory.")
    skip_nonfinite: int = _f(0, "Skip up to N optimizer steps whose loss or gradients are NaN/inf "
                                "(0 = stop at the first, keeping the last checkpoint).", range=at_least(0))
    report_to: list = _f([], "Also log the metrics and the config to these experiment trackers (repeat the flag "
                             "or give a comma list; their files go in the run folder).", TRACKERS)


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
                                              "fsdp", "forgetting", "forgetting_prompts", "report_to")) -> str:
        """A hash of what decides the trained weights (resume refuses a different job)."""
        flat = {k: v for k, v in flat_fields(self).items() if k not in exclude}
        return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        import yaml

        from mlxsft.files import atomic_write_text

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
            value = _list_items(value)
        elif base is dict:
            if isinstance(value, str):
                value = _parse_mapping(value)
            if not isinstance(value, dict):
                raise ValueError(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}{name}: expected {getattr(base, '__name__', base)}, got {value!r}") from None
    choices = f.metadata.get("choices")
    for item in value if base is list else ():  # a list field's choices are those of each item
        if choices and item not in choices:
            raise ConfigError(f"{where}{name}: {item!r} is not one of {', '.join(choices)}")
    if choices and base is not list and value not in choices:
        hint = "QLoRA is LoRA on a quantized base: --method lora --quantize 4" if (name, value) == ("method", "qlora") \
            else None
        raise ConfigError(f"{where}{name}: {value!r} is not one of {', '.join(choices)}", hint=hint)
    check_range(name, value, where)
    return value


def check_range(name: str, value: Any, where: str = "") -> None:
    """A number outside its field's declared range is a ConfigError naming the field and the range."""
    allowed = field_index()[name][1].metadata.get("range")
    if allowed is not None and value is not None and value not in allowed:
        number = "a finite number " if isinstance(value, float) else ""
        raise ConfigError(f"{where}{name}: must be {number}{allowed}, got {value!r}")


def _list_items(value: Any) -> list:
    """A list field's items from a comma list, a repeated flag (click gives a tuple), both, or a YAML list."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(value)
    out = []
    for item in items:
        out += [p.strip() for p in item.split(",") if p.strip()] if isinstance(item, str) else [item]
    return out


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
    """Defaults, then the YAML file, then the overrides (flat field names).

    A file never turns on ``trust_remote_code``: a true value there is dropped with a ``RemoteCodeFromFile``
    warning unless the overrides (the command line) give the field themselves.
    """
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
        if values.pop("trust_remote_code", False) and "trust_remote_code" not in (overrides or {}):
            warnings.warn(RemoteCodeFromFile(p), stacklevel=2)
    for k, v in (overrides or {}).items():
        values[k] = coerce(k, v)
    index = field_index()
    for k, v in values.items():
        setattr(getattr(cfg, index[k][0]), k, v)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Every number within its field's range (declared next to the field), also for a Config built in code."""
    for name, value in flat_fields(cfg).items():
        check_range(name, value)


class RemoteCodeFromFile(UserWarning):
    """A config file (a shared --config, a run's saved config.yaml) asked for ``trust_remote_code: true``.

    Only the command line turns Hub code on, so the file's value is dropped; ``mlxsft train`` makes this an error.
    """

    def __init__(self, path: Path):
        super().__init__(f"{path}: trust_remote_code: true is ignored (only --trust-remote-code on the command "
                         f"line allows model code from the Hub)")
        self.path = path
