"""``mlxsft experiment``: the claims SFT practice rests on, measured on this machine (``mlxsft.experiments``).

    mlxsft experiment curation                                  # curated N vs N random rows vs the whole pool
    mlxsft experiment curation --steps 20 --seeds 5 --out runs/experiments/curation-20
    mlxsft experiment curation --set learning_rate=2e-3         # any config field, for every arm
    mlxsft experiment methods                                   # LoRA r8, LoRA r64, full fine-tuning
    mlxsft experiment reasoning                                 # final answer alone vs worked trace + answer
    mlxsft experiment distill                                   # the student trained on a teacher's answers

Each writes OUT/results.json, OUT/table.md and OUT/*.png, and prints the table. Arms already measured in OUT
(same config, data and questions) are read back, so running the same command again after Ctrl-C continues.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click

from mlxsft.experiments.arms import DEFAULT_MODEL as BASE
from mlxsft.experiments.arms import INSTRUCT_MODEL as INSTRUCT

SETTINGS = {"max_content_width": 110}


def parse_seeds(text: str) -> tuple[int, ...]:
    """``3`` -> seeds 0, 1, 2; ``0,4,7`` -> those seeds."""
    from mlxsft.errors import ConfigError

    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise ValueError
            return tuple(range(n))
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds {text}: expected a count (3) or a list of seeds (0,4,7)") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds {text}: expected distinct non-negative seeds")
    return seeds


def parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set learning_rate=2e-3``: config fields for every arm, checked as ``mlxsft train``'s flags are."""
    from mlxsft.config import coerce
    from mlxsft.errors import ConfigError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair}: expected FIELD=VALUE")
        out[key.strip().replace("-", "_")] = coerce(key.strip().replace("-", "_"), value.strip(), "--set: ")
    return out


# The claims are measured on the embedded instruct model by default: most users fine-tune an instruct model on their
# task, and here a 256-token LoRA step takes 1.6 s against Gemma 3's 4.1 s (a 49k-row head, not 262k), which keeps an
# experiment at its defaults near 15 minutes on 2 cores. distill's student is the embedded base model: a teacher
# teaches a model that cannot do the task yet.


def experiment_options(steps: int, batch_size: int, max_seq_len: int, out: str, n_questions: Optional[int] = None,
                       max_tokens: int = 20, model: str = BASE) -> Callable:
    """The options every experiment takes, with that experiment's defaults."""
    def decorate(fn: Callable) -> Callable:
        for opt in reversed([
            click.option("--data", default=None, metavar="PATH",
                         help="Dataset the experiment starts from [default: the bundled one]."),
            click.option("--model", default=model, show_default=True, metavar="SPEC",
                         help="Model: alias, folder, .gguf or Hub id (the default is embedded)."),
            click.option("--backend", type=click.Choice(["auto", "mlx", "torch"]), default="auto", show_default=True,
                         help="Training backend."),
            click.option("--steps", type=click.IntRange(1), default=steps, show_default=True,
                         help="Optimizer steps per arm (every arm gets the same)."),
            click.option("--seeds", default="3", show_default=True, metavar="N|A,B,...",
                         help="Seeds: a count (seeds 0..N-1) or a list; each arm trains once per seed."),
            click.option("--out", type=click.Path(file_okay=False), default=out, show_default=True,
                         help="Folder for results.json, table.md, the plots and the arms' runs."),
            click.option("--batch-size", type=click.IntRange(1), default=batch_size, show_default=True,
                         help="Packed sequences per optimizer step."),
            click.option("--max-seq-len", type=click.IntRange(8), default=max_seq_len, show_default=True,
                         help="Tokens per packed sequence."),
            click.option("--questions", default=None, type=click.Path(dir_okay=False),
                         help="Held-out questions file [default: the bundled eval questions]."),
            click.option("--n-questions", type=click.IntRange(1), default=n_questions, show_default=True,
                         help="Ask only the first N held-out questions with a reference (none: all)."),
            click.option("--max-tokens", type=click.IntRange(1), default=max_tokens, show_default=True,
                         help="New tokens per answer when scoring."),
            click.option("--n-general", type=click.IntRange(1), default=8, show_default=True,
                         help="General prompts for the forgetting score."),
            click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
                         help="A config field for every arm (repeatable), e.g. --set learning_rate=2e-3."),
        ]):
            fn = opt(fn)
        return fn

    return decorate


def make_setup(model: Optional[str], backend: str, steps: int, seeds: str, out: str, batch_size: int,
               max_seq_len: int, questions: Optional[str], n_questions: Optional[int], max_tokens: int,
               n_general: int, sets: tuple[str, ...]) -> Any:
    from mlxsft.experiments.arms import Setup

    return Setup(out=Path(out), model=model or BASE, backend=backend, steps=steps, seeds=parse_seeds(seeds),
                 batch_size=batch_size, max_seq_len=max_seq_len, questions=Path(questions) if questions else None,
                 n_questions=n_questions, max_tokens=max_tokens, n_general=n_general, overrides=parse_sets(sets))


def _run(backend: str, job: Callable[[Any], dict]) -> None:
    from mlxsft.backends import registry
    from mlxsft.cli.ui.experiment import ExperimentView

    registry.choose_blas(backend)  # OpenBLAS for MLX, before mlx is imported
    view = ExperimentView()
    try:
        results = job(view)
    except KeyboardInterrupt:
        view.interrupted()
        sys.exit(130)
    view.finish(results)


@click.group(context_settings=SETTINGS)
def experiment() -> None:
    """Measure what SFT practice claims, on this machine: one command per claim."""


@experiment.command(context_settings=SETTINGS)
@experiment_options(steps=32, batch_size=1, max_seq_len=192, out="runs/experiments/curation", n_questions=32, max_tokens=16,
                    model=INSTRUCT)
@click.option("--select", "select", type=click.IntRange(1), default=300, show_default=True,
              help="N: rows the curation keeps (and the random arm draws).")
@click.option("--pool-multiple", type=click.IntRange(3), default=4, show_default=True,
              help="Pool size as a multiple of the bundled training set (with --data: your rows plus their "
                   "defective variants, twice your rows at the default rates).")
@click.option("--pool-seed", type=int, default=0, show_default=True, help="Seed of the pool and its defects.")
@click.option("--scorer", default="reference:exact", show_default=True,
              help="Scorer of the best-of-k step (reference, reference:exact, ...).")
@click.option("--embedder", type=click.Choice(["auto", "minilm", "tfidf"]), default="auto", show_default=True,
              help="Embeddings of the diversity selection.")
def curation(data: Optional[str], select: int, pool_multiple: int, pool_seed: int, scorer: str, embedder: str,
             **kw: Any) -> None:
    """Curation beats volume? A curated N vs N random rows vs the whole mixed pool, at equal steps and tokens."""
    from mlxsft.errors import ConfigError
    from mlxsft.experiments.curation import CurationOptions, run_curation
    from mlxsft.experiments.pool import PoolSpec

    if data is not None and kw.get("questions") is None:
        raise ConfigError("--data needs --questions: the bundled eval questions ask about the bundled tasks, so "
                          "the held-out questions for your data must come from you")
    if data is not None and not Path(data).is_file():
        raise ConfigError(f"--data {data}: no such file")
    opts = CurationOptions(setup=make_setup(**kw), pool=PoolSpec(seed=pool_seed, multiple=pool_multiple),
                           select=select, scorer=scorer, embedder=embedder, data=Path(data) if data else None)
    _run(opts.setup.backend, lambda view: run_curation(opts, view))


def parse_ranks(text: str) -> tuple[int, ...]:
    """``8,64`` -> LoRA ranks 8 and 64."""
    from mlxsft.errors import ConfigError

    try:
        ranks = tuple(int(r) for r in text.split(",") if r.strip())
    except ValueError:
        raise ConfigError(f"--ranks {text}: expected LoRA ranks such as 8,64") from None
    if not ranks or min(ranks) < 1 or len(set(ranks)) != len(ranks):
        raise ConfigError(f"--ranks {text}: expected distinct positive LoRA ranks such as 8,64")
    return ranks


@experiment.command(context_settings=SETTINGS)
@experiment_options(steps=32, batch_size=1, max_seq_len=256, out="runs/experiments/methods", n_questions=32,
                    max_tokens=16, model=INSTRUCT)
@click.option("--ranks", default="8,64", show_default=True, metavar="R,R,...", help="LoRA ranks, one arm each.")
@click.option("--lora-lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Learning rate of the LoRA arms.")
@click.option("--full-lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True,
              help="Learning rate of full fine-tuning (LoRA's best rate is commonly ~10x full's).")
def methods(data: Optional[str], ranks: str, lora_lr: float, full_lr: float, **kw: Any) -> None:
    """LoRA learns less and forgets less? LoRA at two ranks vs full fine-tuning, same data, steps and tokens."""
    from mlxsft.experiments.methods import MethodsOptions, run_methods

    opts = MethodsOptions(setup=make_setup(**kw), data=Path(data) if data else None, ranks=parse_ranks(ranks),
                          lora_lr=lora_lr, full_lr=full_lr)
    _run(opts.setup.backend, lambda view: run_methods(opts, view))


@experiment.command(context_settings=SETTINGS)
@experiment_options(steps=16, batch_size=1, max_seq_len=512, out="runs/experiments/reasoning",
                    model=INSTRUCT)
@click.option("--problems", "n_train", type=click.IntRange(1), default=600, show_default=True,
              help="Generated training problems (both arms train on the same ones).")
@click.option("--held-out", "n_held_out", type=click.IntRange(3), default=48, show_default=True,
              help="Generated held-out problems, none of them a training problem.")
@click.option("--problem-seed", type=int, default=0, show_default=True, help="Seed of the problem generator.")
@click.pass_context
def reasoning(ctx: click.Context, data: Optional[str], n_train: int, n_held_out: int, problem_seed: int,
              **kw: Any) -> None:
    """Reasoning traces teach reasoning? The final answer alone vs a worked trace, then the answer, at equal steps.

    Unless --max-tokens is given, answers may run to a limit every reference trace and its answer fit in."""
    from mlxsft.errors import ConfigError
    from mlxsft.experiments.reasoning import ReasoningOptions, run_reasoning
    from mlxsft.experiments.reasoning_data import ReasoningSpec

    if data is not None:
        raise ConfigError("--data: the reasoning experiment generates its problems and traces (--problems, "
                          "--problem-seed); no other dataset yet")
    if kw.get("questions") is not None:
        raise ConfigError("--questions: the reasoning experiment scores its own generated held-out problems "
                          "(--held-out)")
    # --max-tokens left at its default: a limit every reference trace and its answer fit in
    given = ctx.get_parameter_source("max_tokens") == click.core.ParameterSource.COMMANDLINE
    opts = ReasoningOptions(setup=make_setup(**kw), max_tokens=kw["max_tokens"] if given else None,
                            problems=ReasoningSpec(seed=problem_seed, train=n_train, held_out=n_held_out))
    _run(opts.setup.backend, lambda view: run_reasoning(opts, view))


@experiment.command(context_settings=SETTINGS)
@experiment_options(steps=32, batch_size=1, max_seq_len=256, out="runs/experiments/distill", n_questions=32,
                    max_tokens=16)
@click.option("--teacher", default=INSTRUCT, show_default=True, metavar="SPEC|URL",
              help="Teacher: a model spec, or an OpenAI-compatible endpoint (http(s)://.../v1).")
@click.option("--teacher-model", default=None, help="The model an endpoint teacher serves.")
@click.option("--api-key-env", default=None, metavar="VAR", help="Environment variable holding the endpoint's key.")
@click.option("--teacher-max-tokens", type=click.IntRange(1), default=48, show_default=True,
              help="New tokens per teacher answer to a training prompt.")
@click.option("--best-of", "best_of", type=click.IntRange(1), default=1, show_default=True, metavar="K",
              help="K > 1: train on the best of K sampled teacher answers per prompt (data best-of-k).")
@click.option("--temp", type=click.FloatRange(min=0), default=0.8, show_default=True,
              help="Sampling temperature of the K samples (with --best-of).")
@click.option("--scorer", default="reference", show_default=True,
              help="Scorer that picks the best of K (reference: the row's own answer; see data best-of-k).")
@click.option("--threshold", type=float, default=None,
              help="With --best-of: drop prompts whose best answer scores below this (rejection sampling).")
def distill(data: Optional[str], teacher: str, teacher_model: Optional[str], api_key_env: Optional[str],
            teacher_max_tokens: int, best_of: int, temp: float, scorer: str, threshold: Optional[float],
            **kw: Any) -> None:
    """Distillation transfers a skill? A teacher answers the prompts, the student (--model) trains on its answers."""
    from mlxsft.experiments.distill import DistillExperiment, run_distill

    opts = DistillExperiment(setup=make_setup(**kw), teacher=teacher, data=Path(data) if data else None,
                             teacher_max_tokens=teacher_max_tokens, teacher_model_name=teacher_model,
                             api_key_env=api_key_env, best_of=best_of, temp=temp, scorer=scorer, threshold=threshold)
    _run(opts.setup.backend, lambda view: run_distill(opts, view))
