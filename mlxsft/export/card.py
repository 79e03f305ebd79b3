"""The model card (README.md) written into every export, from the run's config.yaml, metrics.jsonl and compare.json.

    text = model_card(run, CardExport(format="gguf", files=["my-run-q8_0.gguf", "Modelfile"], ...))

Sections: base model, data, method, hyperparameters, final metrics (last train loss, best and last validation
loss, steps, tokens), the before/after table totals when the run asked the held-out questions, the export
itself (format, precision, stop tokens) and how to load it. A Hugging Face front matter block names the base
model and the library.

A card is made to be published, so it names local things by their last part only: a base model or dataset
given as a path is its folder or file name (an alias or Hub id stays as typed), and the run is its folder name
with the checkpoint inside it (``sft-1/best``). No absolute path, and so no home folder or user name.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mlxsft.runs.read import RunFolder
from mlxsft.export.stops import Stops

LIBRARY = {"mlx": "mlx", "hf": "transformers", "gguf": "gguf"}
MARKER = "<!-- written by mlxsft export -->"  # lets --overwrite tell an old export from someone's folder


@dataclass
class CardExport:
    format: str  # mlx | hf | gguf
    precision: str  # e.g. "float16", "4-bit (group size 64)", "q8_0"
    stops: Stops
    files: list[str] = field(default_factory=list)
    base_name: str = ""  # display name of the base model (a Hub id, an alias's name, a folder's name)


def model_card(run: RunFolder, export: CardExport) -> str:
    cfg = run.config
    title = run.name
    base = export.base_name or public_name(run.base_model)
    tags = ["mlxsft", "sft", run.method, run.backend]
    if cfg is not None and cfg.model.quantize:
        tags.append("qlora")
    front = ["---", f"base_model: {_yaml(base)}",
             f"library_name: {LIBRARY[export.format]}", "pipeline_tag: text-generation",
             "tags:", *[f"- {t}" for t in tags], "---", ""]
    body = [MARKER, "", f"# {title}", "",
            f"Supervised fine-tune of **{base}** with "
            f"[mlxsft](https://pypi.org/project/mlxsft/) ({_method_name(run)}, {run.backend} backend), "
            f"exported as {_format_name(export.format)}.", ""]
    body += _section("Base model", [("model", public_name(run.base_model)), ("name", export.base_name or None),
                                    ("dtype in training", cfg.model.dtype if cfg else None),
                                    ("quantized in training", f"{cfg.model.quantize}-bit (QLoRA)"
                                     if cfg and cfg.model.quantize else None)])
    if cfg is not None:
        d, lo, o, t = cfg.data, cfg.lora, cfg.optim, cfg.train
        body += _section("Data", [("dataset", public_name(d.data) if d.data else "mlxsft bundled SFT set"),
                                  ("format", d.format),
                                  ("supervised tokens", d.train_on), ("max sequence length", d.max_seq_len),
                                  ("packing", "yes" if d.pack else "no"), ("max rows", d.max_rows)])
        method = [("method", _method_name(run)), ("layers adapted", "all" if lo.num_layers < 0 else f"last {lo.num_layers}")]
        if lo.method != "full":
            method += [("rank", lo.rank), ("alpha", lo.alpha), ("scale (alpha / rank)", _num(lo.alpha / lo.rank)),
                       ("dropout", lo.dropout), ("target modules", ", ".join(map(str, lo.target_modules)))]
        else:
            method += [("embeddings trained", "yes" if lo.train_embeddings else "no")]
        body += _section("Method", method)
        body += _section("Hyperparameters", [
            ("optimizer", o.optimizer), ("learning rate", _num(o.learning_rate)), ("schedule", o.lr_schedule),
            ("warmup", _num(o.warmup)), ("weight decay", _num(o.weight_decay)), ("max grad norm", _num(o.max_grad_norm)),
            ("epochs", _num(t.epochs) if t.epochs is not None else None), ("iterations", t.iters),
            ("batch size", t.batch_size), ("gradient accumulation", t.grad_accum), ("seed", t.seed)])
    body += _section("Final metrics", _metrics(run.metrics))
    body += _compare(run.compare)
    stops = export.stops
    body += _section("This export", [
        ("format", _format_name(export.format)), ("precision", export.precision),
        ("files", ", ".join(f"`{f}`" for f in export.files) if export.files else None),
        ("end of turn", f"`{stops.eot_text}`" + ("" if stops.eot_is_token else " (not a single token: a stop string)")
         if stops.eot_text else None),
        ("stop token ids", ", ".join(map(str, stops.ids)) or None),
        ("exported", time.strftime("%Y-%m-%d %H:%M")), ("from run", _run_ref(run))])
    body += ["## Use", "", "```bash", *_usage(export), "```", ""]
    return "\n".join(front + body)


def public_name(spec: str) -> str:
    """An alias or Hub id as typed; a path (absolute, ``~``, ``./``, or one that exists here) by its last part."""
    text = str(spec).strip()
    path = Path(text).expanduser()
    if path.is_absolute() or text.startswith(("~", ".")) or path.exists():
        return path.resolve().name or text
    return text


def _run_ref(run: RunFolder) -> str:
    """The run folder's name and, for a checkpoint, the path inside it: ``sft-1``, ``sft-1/best``."""
    root = run.run_dir.resolve()
    try:
        inner = run.weights_dir.resolve().relative_to(root)
    except ValueError:
        inner = Path()
    return (Path(root.name) / inner).as_posix()


def _method_name(run: RunFolder) -> str:
    quant = run.config.model.quantize if run.config else None
    if run.method == "lora" and quant:
        return f"QLoRA ({quant}-bit base)"
    return {"lora": "LoRA", "dora": "DoRA", "full": "full fine-tuning"}.get(run.method, run.method)


def _format_name(fmt: str) -> str:
    return {"mlx": "an MLX model (mlx-lm)", "hf": "a Hugging Face transformers model", "gguf": "GGUF (llama.cpp, Ollama)"}[fmt]


def _section(title: str, rows: list[tuple[str, Any]]) -> list[str]:
    rows = [(k, v) for k, v in rows if v is not None and v != ""]
    if not rows:
        return []
    return [f"## {title}", "", "| | |", "|---|---|", *[f"| {k} | {_cell(v)} |" for k, v in rows], ""]


def _metrics(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    if not rows:
        return [("metrics", "none recorded")]
    train = [r for r in rows if r.get("train_loss") is not None]
    val = [r for r in rows if r.get("val_loss") is not None]
    last = rows[-1]
    out: list[tuple[str, Any]] = [("steps", last.get("step")), ("trained tokens", last.get("trained_tokens"))]
    if train:
        out += [("first train loss", _num(train[0]["train_loss"])), ("final train loss", _num(train[-1]["train_loss"]))]
    if val:
        best = min(val, key=lambda r: r["val_loss"])
        out += [("final validation loss", _num(val[-1]["val_loss"])),
                ("final validation perplexity", _num(math.exp(min(val[-1]["val_loss"], 50.0)))),
                ("best validation loss", f"{_num(best['val_loss'])} (step {best.get('step')})")]
    if last.get("elapsed_s") is not None:
        out.append(("training time", f"{last['elapsed_s']:.0f} s"))
    return out


def _compare(compare: Optional[dict[str, Any]]) -> list[str]:
    totals = (compare or {}).get("totals") or {}
    if not totals or not compare.get("n_scored"):
        return []
    lines = ["## Before / after", "",
             f"Held-out questions with a reference answer: {compare['n_scored']} "
             f"(of {compare.get('n_questions')} asked, greedy decoding).", "",
             "| model | right | exact | numeric | contains | stopped at end of turn |", "|---|---|---|---|---|---|"]
    keys = ("right", "exact", "numeric", "contains", "stop_rate")
    for model in compare.get("models") or [m for m, v in totals.items() if isinstance(v, dict)]:
        scores = totals.get(model) or {}
        cells = [f"{scores[k]:.1%}" if isinstance(scores.get(k), (int, float)) else "-" for k in keys]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if "wins" in totals:
        lines += ["", f"Learned: {totals['wins']} wins, {totals['regressions']} regressions, "
                      f"{totals['unchanged']} unchanged."]
    forgetting = compare.get("forgetting")
    if forgetting:
        lines += ["", f"Forgetting: KL(base ‖ tuned) {forgetting['kl']:.3f} nats/token on the base model's answers "
                      f"to {forgetting['prompts']} general prompts (their NLL {forgetting['base_nll']:.2f} → "
                      f"{forgetting['tuned_nll']:.2f})."]
    return lines + [""]


def _usage(export: CardExport) -> list[str]:
    if export.format == "mlx":
        return ["mlx_lm.generate --model . --prompt 'Hello'", "mlxsft chat --model ."]
    if export.format == "hf":
        return ["python -c \"from transformers import pipeline; "
                "print(pipeline('text-generation', model='.')([{'role': 'user', 'content': 'Hello'}]))\""]
    gguf = next((f for f in export.files if f.endswith(".gguf")), "model.gguf")
    return ["ollama create my-model -f Modelfile && ollama run my-model",
            f"llama-cli -m {gguf} -cnv"]


def _num(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.4g}"
    return v


def _cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _yaml(text: str) -> str:
    return text if text.replace("-", "").replace("_", "").replace(".", "").replace("/", "").isalnum() else repr(str(text))
