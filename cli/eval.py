"""``mlxsft eval``: score a model (or a tuned model against its base) on questions and/or a dataset.

    mlxsft eval --adapter runs/sft-20261129-0712 --questions qa.jsonl --compare
    mlxsft eval --adapter runs/sft-20261129-0712 --data my_data/ --compare --json
    mlxsft eval --adapter runs/torch-run --questions qa.jsonl     # a --backend torch run: loads with torch

``--questions``: JSONL rows with ``question`` (or ``messages``) and an optional ``reference``; answered
greedily and scored by exact, numeric, contains match and word-overlap similarity, with one verdict per answer
(``mlxsft.scoring.verdict``). ``--compare`` adds the learned-answer totals (wins: base wrong -> tuned right,
regressions: the reverse) and the forgetting score (KL(base || tuned) per token on the base model's answers to
general prompts). ``--compare`` alone asks the questions the run's own before/after table asked. ``--data``:
mean loss and perplexity over a split, with the run's masks and max_seq_len, as in training's validation.
``--json`` prints one object (``questions`` is ``compare.json``'s schema)::

    {
      "model": str,                     # the base model spec
      "backend": "mlx" | "torch",       # what loaded and ran the model(s)
      "adapter": str | null,            # the run folder
      "models": ["base", "tuned"],      # which were evaluated (one, or both with --compare)
      "questions": null | {
        "file": str, "questions_from": str, "n_questions": int, "n_scored": int, "n_open": int,
        "totals": {model: {"right", "exact", "numeric", "contains", "similarity": float|null,   # shares
                           "stop_rate", "stop_rate_scored": float|null},   # answers ended at end of turn
                   "wins": int, "regressions": int, "unchanged": int},     # with --compare
        "learned": null | {"questions", "wins", "regressions", "unchanged", "right_before", "right_after": int,
                           "per_category": {category: {the same counts}}, "open_questions": int,
                           "stop_rate", "stop_rate_scored": {model: float}},
        "forgetting": null | {"kl": float, "tuned_nll": float, "base_nll": float,   # per token, nats
                              "prompts": int, "tokens": int},
        "rows": [{"question": str, "reference": str|null, "category": str|null, "answers": {model: str},
                  "scores": {model: {"exact": bool, "numeric": bool, "contains": bool, "similarity": float}},
                  "verdicts": {model: "right"|"partial"|"wrong"}, "finish_reason": {model: "stop"|"length"},
                  "tokens": {model: int}, "tokens_per_sec": {model: float}}]
      },
      "data": null | {
        "path": str, "split": str, "rows": int,
        "results": {model: {"loss": float, "perplexity": float, "tokens": int}}   # tokens = supervised
      }
    }
"""

from __future__ import annotations

import json

import click


@click.command("eval", context_settings={"max_content_width": 110})
@click.option("--model", "-m", default=None, help="Base model [default: the run's base model with --adapter].")
@click.option("--adapter", default=None, metavar="RUN", help="Run folder with trained adapters.")
@click.option("--questions", type=click.Path(dir_okay=False), default=None, help="Questions JSONL file.")
@click.option("--data", default=None, metavar="PATH", help="Dataset (file or folder) for loss and perplexity.")
@click.option("--split", default="valid", show_default=True, help="Split of --data to score.")
@click.option("--compare", is_flag=True, help="Evaluate the base and the tuned model side by side.")
@click.option("--max-tokens", type=int, default=128, show_default=True, help="Max new tokens per answer.")
@click.option("--limit", type=int, default=None, help="Ask at most this many questions.")
@click.option("--batch-size", type=int, default=None, help="Rows per batch for --data [default: the run's, else 8].")
@click.option("--max-seq-len", type=int, default=None, help="Truncate --data rows [default: the run's, else 512].")
@click.option("--backend", type=click.Choice(["mlx", "torch"]), default=None,
              help="Backend [default: the run's backend with --adapter, else mlx].")
@click.option("--forgetting/--no-forgetting", default=True, show_default=True,
              help="With --compare: the forgetting score (KL to the base on general prompts).")
@click.option("--forgetting-prompts", type=click.Path(dir_okay=False), default=None,
              help="Questions file of general prompts for the forgetting score [default: the bundled ones].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: see `cli/eval.py`).")
def eval_command(model: str | None, adapter: str | None, questions: str | None, data: str | None, split: str,
                 compare: bool, max_tokens: int, limit: int | None, batch_size: int | None,
                 max_seq_len: int | None, backend: str | None, forgetting: bool, forgetting_prompts: str | None,
                 as_json: bool) -> None:
    """Score answers to questions and/or loss on a dataset; --compare: base vs tuned, wins, regressions, forgetting."""
    from mlxsft.cli.ui.eval import EvalProgress, render_eval
    from mlxsft.evaluate import EvalOptions, run_eval

    from mlxsft.backends import registry

    registry.choose_blas(registry.backend_of(backend, adapter))
    opts = EvalOptions(model=model, adapter=adapter, questions=questions, data=data, split=split, compare=compare,
                       max_tokens=max_tokens, limit=limit, batch_size=batch_size, max_seq_len=max_seq_len,
                       backend=backend, forgetting=forgetting, forgetting_prompts=forgetting_prompts)
    with EvalProgress(enabled=not as_json) as progress:
        report = run_eval(opts, progress=progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        render_eval(report)
