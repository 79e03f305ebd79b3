"""One arm of an experiment: train a config variant with ``mlxsft.train.run_training``, score it with the
before/after table's machinery, and keep its numbers; what every arm of an experiment shares is a ``Setup``.

    setup = Setup(out=Path("runs/experiments/curation"), steps=32, seeds=(0, 1, 2))
    questions, general = prepare_questions(setup)             # OUT/questions.jsonl, OUT/general.jsonl
    result = run_arm(setup, Arm("curated", Path("curated.jsonl")), seed=0, callback=print)
    result.right, result.kl, result.trained_tokens            # held-out right answers, forgetting, budget
    check_equal_budget([...results])                          # same optimizer steps and tokens, or RunError

There is no training loop and no scoring code here: an arm is ``run_training`` with the before/after table on
(``compare_models``: the base and the tuned model answer the held-out questions greedily, and the forgetting
score, KL(base || tuned) on the base's answers to general prompts), read back from the run folder's
``compare.json`` (``learned_totals``) and ``metrics.jsonl``. Every arm packs its rows into sequences of
``max_seq_len`` tokens (``pack``), so equal optimizer steps also mean nearly equal trained tokens, whatever the
length of the arm's rows; ``check_equal_budget`` asserts both from the runs' metrics.

Resumable per arm: ``OUT/arms/<arm>-seed<k>.json`` holds an arm's numbers and a key of everything that decides
them (its config, its data's bytes, the questions); an arm whose file has the same key is read back, not trained
again, so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mlxsft.config import Config
from mlxsft.errors import RunError
from mlxsft.experiments.events import Callback, silent

DEFAULT_MODEL = "gemma3-270m"  # the embedded base model of the demo
INSTRUCT_MODEL = "smollm2-135m-instruct"  # the embedded instruct model


@dataclass
class Setup:
    """What every arm of an experiment shares: model, budget, seeds and the held-out questions."""

    out: Path
    model: str = DEFAULT_MODEL
    backend: str = "auto"
    steps: int = 32  # optimizer steps per arm
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 1  # packed sequences per step
    max_seq_len: int = 192  # tokens per packed sequence
    questions: Optional[Path] = None  # held-out questions file (default: the bundled eval questions)
    n_questions: Optional[int] = 32  # ask only the first N questions that have a reference (None: all)
    max_tokens: int = 16  # new tokens per answer when scoring (the longest reference is ~15)
    general: Optional[Path] = None  # general prompts for the forgetting score (default: the bundled ones)
    n_general: Optional[int] = 8
    overrides: dict[str, Any] = field(default_factory=dict)  # more config fields for every arm
    model_spec: Optional[str] = None  # what the arms load (``prepare_model``); default: ``model``

    @property
    def questions_path(self) -> Path:
        return self.out / "questions.jsonl"

    @property
    def general_path(self) -> Path:
        return self.out / "general.jsonl"


@dataclass
class Arm:
    name: str
    data: Path  # the arm's training rows (JSONL)
    overrides: dict[str, Any] = field(default_factory=dict)  # config fields of this arm only
    description: str = ""


@dataclass
class ArmResult:
    arm: str
    seed: int
    run_dir: str
    steps: int
    trained_tokens: int  # non-padding tokens through the model, from metrics.jsonl
    rows: int  # training rows of the arm
    train_loss: Optional[float]  # the last logged window's mean
    peak_memory_gb: float
    s_per_step: float
    trainable_params: int
    right: int  # held-out questions the tuned model answers right (exact or numeric match)
    right_base: int  # ... the base model answers right
    questions: int  # held-out questions scored
    wins: int
    regressions: int
    stop_rate: Optional[float]  # tuned answers that ended at the end of turn, scored questions
    kl: Optional[float]  # forgetting: KL(base || tuned) per token on the base's answers to general prompts
    tuned_nll: Optional[float]
    base_nll: Optional[float]
    train_s: float
    total_s: float  # training, loading and scoring
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArmResult":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ----------------------------------------------------------------------------- held-out questions
def prepare_questions(setup: Setup) -> tuple[Path, Path]:
    """Write the questions every arm is scored on (those with a reference, the first ``n_questions``) and the
    forgetting score's general prompts into OUT; returns both paths. Open questions are left out: they cost
    two answers each and score nothing."""
    from mlxsft.evaluate import load_general_prompts, load_questions
    from mlxsft.files import atomic_write_text

    setup.out.mkdir(parents=True, exist_ok=True)
    scored = [q for q in load_questions(setup.questions) if q.reference is not None]
    if not scored:
        raise RunError(f"{setup.questions or 'the bundled eval questions'}: no question has a reference to score")
    scored = scored[:setup.n_questions] if setup.n_questions else scored
    rows = [{"messages": [*q.messages, {"role": "assistant", "content": q.reference}], "category": q.category}
            for q in scored]
    atomic_write_text(setup.questions_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    general = load_general_prompts(setup.general)
    general = general[:setup.n_general] if setup.n_general else general
    atomic_write_text(setup.general_path, "".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n"
                                                  for m in general))
    return setup.questions_path, setup.general_path


def held_out_prompts(setup: Setup) -> set[str]:
    """The user turns of the held-out questions: no arm may train on one (the experiments assert it)."""
    from mlxsft.evaluate import load_questions

    return {m["content"] for q in load_questions(setup.questions_path) for m in q.messages if m["role"] == "user"}


# ----------------------------------------------------------------------------- the model, once
def prepare_model(setup: Setup, callback: Callback = silent) -> str:
    """The model spec every arm trains: ``setup.model``, except that a GGUF model on the torch backend is
    de-quantized once into a cached Hugging Face folder (``$MLXSFT_CACHE/hf/<name>-<key>``). transformers
    reads a GGUF in ~110 s on a 2-core CPU (the embedded Gemma 3 270M; the 262k-token vocabulary is most of
    it) and the folder it writes (``models.from_gguf.gguf_to_hf``: the same tensors and tokenizer) in ~4 s,
    so nine arms would otherwise spend most of their time loading."""
    from mlxsft.backends.registry import resolve
    from mlxsft.models import resolve_model

    source = resolve_model(setup.model)
    if source.format != "gguf" or resolve(setup.backend) != "torch":
        return setup.model  # MLX caches its own conversion (models/cache.py); other formats load directly
    from mlxsft.files import atomic_dir
    from mlxsft.models.cache import COMPLETE, cache_root, is_complete
    from mlxsft.models.fingerprint import model_content_key
    from mlxsft.models.from_gguf import gguf_to_hf

    gguf = Path(source.path)
    folder = cache_root() / "hf" / f"{source.name}-{model_content_key(gguf).removeprefix('sha256:')[:16]}"
    if not is_complete(folder):
        callback("stage", {"text": f"de-quantizing {gguf.name} once into {folder} (the arms load it from there)"})
        with atomic_dir(folder, exist_ok=True, marker=COMPLETE) as tmp:
            gguf_to_hf(gguf, tmp)
    return str(folder)


# ----------------------------------------------------------------------------- one arm
def arm_config(setup: Setup, arm: Arm, seed: int, run_dir: Path) -> Config:
    """``load_config`` of the shared budget, the setup's and the arm's overrides, the data, seed and folder."""
    from mlxsft.config import load_config

    values: dict[str, Any] = dict(
        model=setup.model_spec or setup.model, backend=setup.backend, iters=setup.steps, batch_size=setup.batch_size,
        max_seq_len=setup.max_seq_len, pack=True, eval_every=0, save_every=0, report_every=1,
        compare=True, compare_questions=str(setup.questions_path), compare_max_tokens=setup.max_tokens,
        forgetting=True, forgetting_prompts=str(setup.general_path), name=arm.name)
    values.update(setup.overrides)
    values.update(arm.overrides)
    values.update(data=str(arm.data), seed=seed, out=str(run_dir))
    return load_config(None, values)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def arm_key(cfg: Config, data: Path, setup: Setup) -> str:
    """What decides an arm's numbers: the whole config and the bytes of its data and questions."""
    parts = [json.dumps(cfg.to_dict(), sort_keys=True, default=str), _file_digest(data),
             _file_digest(setup.questions_path), _file_digest(setup.general_path)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def result_path(setup: Setup, arm: Arm, seed: int) -> Path:
    return setup.out / "arms" / f"{arm.name}-seed{seed}.json"


def run_arm(setup: Setup, arm: Arm, seed: int, callback: Callback = silent,
            base_memo: Optional[dict] = None) -> tuple[ArmResult, bool]:
    """Train and score one arm at one seed; (result, read back from an earlier run).

    ``base_memo``: one dict for all the arms of an experiment; the base model's answers to the held-out and
    general prompts are generated by the first arm on that base model and reused by the others."""
    import time

    from mlxsft.files import atomic_write_json
    from mlxsft.train import run_training

    run_dir = setup.out / "arms" / f"{arm.name}-seed{seed}"
    cfg = arm_config(setup, arm, seed, run_dir)
    key = arm_key(cfg, arm.data, setup)
    saved = result_path(setup, arm, seed)
    if saved.is_file():
        try:
            old = ArmResult.from_dict(json.loads(saved.read_text()))
        except (ValueError, TypeError):
            old = None
        if old is not None and old.key == key:
            return old, True
    plan: dict[str, Any] = {}

    def forward(event: str, payload: dict) -> None:
        if event == "plan":
            plan.update(payload)
        callback("train", {"arm": arm.name, "seed": seed, "event": event, "payload": payload})

    start = time.perf_counter()
    memo = base_memo.setdefault(cfg.model.model, {}) if base_memo is not None else None  # one base, one memo
    outcome = run_training(cfg, overwrite=True, callback=forward, base_memo=memo)
    if outcome.result is None or outcome.result.interrupted or outcome.compare is None:
        raise KeyboardInterrupt  # Ctrl-C during the arm: what finished is kept, the rest runs next time
    result = _measure(arm, seed, run_dir, outcome, plan, time.perf_counter() - start, key)
    atomic_write_json(saved, result.to_dict())
    return result, False


def _measure(arm: Arm, seed: int, run_dir: Path, outcome: Any, plan: dict, total_s: float, key: str) -> ArmResult:
    from mlxsft.runs import MetricsLog

    records = [r for r in MetricsLog(run_dir / "metrics.jsonl").read() if r.get("train_loss") is not None]
    if not records:
        raise RunError(f"{run_dir}: no training step in metrics.jsonl")
    report = outcome.compare.to_dict()  # the compare.json the run wrote: learned totals and forgetting
    learned, tuned, forgot = report["learned"], report["totals"]["tuned"], report["forgetting"] or {}
    res = outcome.result
    return ArmResult(
        arm=arm.name, seed=seed, run_dir=str(run_dir), steps=int(records[-1]["step"]),
        trained_tokens=int(records[-1]["trained_tokens"]), rows=_count_rows(arm.data),
        train_loss=records[-1]["train_loss"], peak_memory_gb=float(res.peak_memory_gb),
        s_per_step=res.elapsed_s / max(1, res.steps), trainable_params=int(plan.get("trainable") or 0),
        right=learned["right_after"], right_base=learned["right_before"], questions=learned["questions"],
        wins=learned["wins"], regressions=learned["regressions"], stop_rate=tuned.get("stop_rate_scored"),
        kl=forgot.get("kl"), tuned_nll=forgot.get("tuned_nll"), base_nll=forgot.get("base_nll"),
        train_s=res.elapsed_s, total_s=total_s, key=key)


def _count_rows(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


# ----------------------------------------------------------------------------- the budget
TOKEN_TOLERANCE = 0.10  # a packed sequence ends where the next row no longer fits: some slack per step


def check_equal_budget(results: list[ArmResult], tolerance: float = TOKEN_TOLERANCE) -> dict[str, Any]:
    """Every arm ran the same optimizer steps and, within ``tolerance``, the same trained tokens (from each run's
    metrics.jsonl); RunError naming the arms otherwise. Returns the steps and the token range."""
    if not results:
        raise RunError("no arm finished")
    steps = {(r.arm, r.seed): r.steps for r in results}
    if len(set(steps.values())) != 1:
        raise RunError(f"the arms ran different numbers of optimizer steps: {steps}")
    tokens = [r.trained_tokens for r in results]
    lo, hi = min(tokens), max(tokens)
    if hi > lo * (1 + tolerance):
        per_arm = {f"{r.arm}/seed{r.seed}": r.trained_tokens for r in results}
        raise RunError(f"the arms trained on unequal token counts ({lo} to {hi}, more than {tolerance:.0%} apart): "
                       f"{per_arm}", hint="raise --max-seq-len or lower --batch-size, so packing fills sequences")
    return {"steps": results[0].steps, "tokens_min": lo, "tokens_max": hi, "tolerance": tolerance}


def aggregate(results: list[ArmResult], metrics: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per arm (in first-seen order), the ``Spread`` over seeds of each metric."""
    from mlxsft.experiments.stats import spread

    arms = list(dict.fromkeys(r.arm for r in results))
    return {a: {m: spread(getattr(r, m) for r in results if r.arm == a) for m in metrics} for a in arms}
