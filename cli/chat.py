"""``mlxsft chat``: talk to a model, or to a tuned model and its base side by side.

    mlxsft chat --model smollm2-135m-instruct
    mlxsft chat --adapter runs/sft-20261129-0712 --compare       # base model and template from the run
    printf 'What is 2+2?\\nAnd 3+3?\\n' | mlxsft chat --adapter runs/sft-… --json

On a terminal: a REPL (``/help`` lists the commands). With stdin not a terminal: one prompt per line
(``/commands`` allowed), each answer printed as it streams, or with ``--json`` one object per line::

    {"prompt": str, "answers": {model: str}, "tokens": {model: int}, "prompt_tokens": {model: int},
     "reused_tokens": {model: int}, "tokens_per_sec": {model: float}, "finish_reason": {model: str}}

where model is "tuned" (with ``--adapter``) and/or "base", and finish_reason is stop | length | interrupted.
"""

from __future__ import annotations

import sys

import click


@click.command(context_settings={"max_content_width": 110})
@click.option("--model", "-m", default=None, help="Base model: alias, local folder, .gguf or Hub id "
              "[default: the run's base model with --adapter, else the embedded SmolLM2].")
@click.option("--adapter", default=None, metavar="RUN",
              help="Run folder with trained adapters (its chat template is used).")
@click.option("--compare", is_flag=True, help="Answer with the base and the tuned model side by side.")
@click.option("--system", default=None, metavar="TEXT", help="System prompt.")
@click.option("--temp", type=float, default=0.0, show_default=True, help="Sampling temperature (0 = greedy).")
@click.option("--top-p", type=float, default=1.0, show_default=True, help="Nucleus sampling threshold.")
@click.option("--max-tokens", type=int, default=512, show_default=True, help="Max new tokens per answer.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--backend", type=click.Choice(["mlx", "torch"]), default=None,
              help="Generation backend [default: the run's backend with --adapter, else mlx].")
@click.option("--json", "as_json", is_flag=True, help="Scripted mode: one JSON object per answer.")
def chat(model: str | None, adapter: str | None, compare: bool, system: str | None, temp: float, top_p: float,
         max_tokens: int, seed: int, backend: str | None, as_json: bool) -> None:
    """Chat with a model (streamed, multi-turn); --compare shows base and tuned answers side by side."""
    from mlxsft.chat import ChatOptions, open_session
    from mlxsft.cli.ui.chat import loading, run_repl, run_script

    from mlxsft.backends import registry

    registry.choose_blas(registry.backend_of(backend, adapter))
    opts = ChatOptions(model=model, adapter=adapter, compare=compare, system=system, temp=temp, top_p=top_p,
                       max_tokens=max_tokens, seed=seed, backend=backend)
    with loading(adapter or model or "model") as progress:
        session = open_session(opts, progress=progress)
    if sys.stdin.isatty() and not as_json:
        run_repl(session)
    else:
        run_script(session, sys.stdin, as_json)
