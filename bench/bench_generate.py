"""Generation speed: mlxsft's chat/eval generator against ``mlx_lm.generate`` on the same model, prompt and settings.

    python bench/bench_generate.py                                  # embedded SmolLM2-135M, 256 tokens, greedy
    python bench/bench_generate.py --model path/or/alias --adapter runs/sft-… --max-tokens 512 --repeats 5

Both sides load nothing of their own: one model (``mlxsft.models.load_mlx`` plus the run's adapters) is
handed to each, the prompt is the same chat-templated token list, and EOS is switched off so both
generate exactly ``--max-tokens`` tokens. Reported: decode tokens/s (prompt excluded; mlx-lm's
``generation_tps``) and end-to-end tokens/s (prompt included), best of ``--repeats`` after a warm-up.
Also shown: a second chat turn through our KV-cache reuse against a cold prefill of the same prompt.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import time


def run_mlx_lm(model, tokenizer, prompt: list[int], max_tokens: int) -> tuple[float, float]:
    from mlx_lm.generate import stream_generate
    from mlx_lm.sample_utils import make_sampler

    start = time.perf_counter()
    last = None
    for last in stream_generate(model, tokenizer, prompt, max_tokens=max_tokens, sampler=make_sampler(temp=0.0)):
        pass
    wall = time.perf_counter() - start
    return last.generation_tps, last.generation_tokens / wall


def run_ours(view, tokenizer, prompt: list[int], max_tokens: int) -> tuple[float, float]:
    from mlxsft.backends.mlx.generate import CachedGenerator, Sampling, StopCondition

    gen = CachedGenerator(view, tokenizer)
    start = time.perf_counter()
    ans = gen.generate(prompt, Sampling(max_tokens=max_tokens), StopCondition())
    wall = time.perf_counter() - start
    assert ans.tokens == max_tokens, ans
    return ans.tokens_per_sec, ans.tokens / wall


def second_turn(view, tokenizer, template: str, max_tokens: int) -> tuple[float, float, int]:
    """Seconds to answer turn 2 with the cache of turn 1, and from a cold cache."""
    from mlxsft.backends.mlx.generate import CachedGenerator, Sampling, render_prompt, stop_condition

    hf = tokenizer._tokenizer
    stop = stop_condition(tokenizer, template)
    msgs = [{"role": "user", "content": "Write three sentences about the sea." * 8}]
    warm = CachedGenerator(view, tokenizer)
    first = warm.generate(render_prompt(hf, msgs, template), Sampling(max_tokens=max_tokens), stop)
    msgs += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "Now about mountains."}]
    prompt = render_prompt(hf, msgs, template)
    t0 = time.perf_counter()
    reused = warm.generate(prompt, Sampling(max_tokens=16), stop)
    t1 = time.perf_counter()
    CachedGenerator(view, tokenizer).generate(prompt, Sampling(max_tokens=16), stop)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, reused.reused_tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--prompt", default="Explain in detail how a bicycle works, part by part.")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from mlxsft.backends.mlx.generate import load_views, render_prompt
    from mlxsft.target import chat_template, resolve_target

    target = resolve_target(args.model, args.adapter)
    tokenizer, views = load_views(target.model, target.adapter, fine_tune_type=target.fine_tune_type,
                                  load_kwargs=target.load_kwargs)
    view = views["tuned" if target.adapter else "base"]
    template = chat_template(target, tokenizer._tokenizer)
    prompt = render_prompt(tokenizer._tokenizer, [{"role": "user", "content": args.prompt}], template)
    eos = tokenizer.eos_token_ids
    tokenizer.eos_token_ids = set()  # both sides generate exactly --max-tokens tokens
    try:
        run_mlx_lm(view.model, tokenizer, prompt, 16)  # warm-up (kernels, caches)
        run_ours(view, tokenizer, prompt, 16)
        theirs, ours = [], []
        for _ in range(args.repeats):  # interleaved, so drift (thermals) hits both alike
            theirs.append(run_mlx_lm(view.model, tokenizer, prompt, args.max_tokens))
            ours.append(run_ours(view, tokenizer, prompt, args.max_tokens))
    finally:
        tokenizer.eos_token_ids = eos

    best = lambda rows, i: max(r[i] for r in rows)  # noqa: E731
    print(f"model {target.model}{' + ' + str(target.adapter) if target.adapter else ''}; "
          f"prompt {len(prompt)} tokens; {args.max_tokens} new tokens, greedy; best of {args.repeats}")
    print(f"{'':18}{'decode tok/s':>14}{'end-to-end tok/s':>18}")
    print(f"{'mlx_lm.generate':18}{best(theirs, 0):>14.1f}{best(theirs, 1):>18.1f}")
    print(f"{'mlxsft':18}{best(ours, 0):>14.1f}{best(ours, 1):>18.1f}")
    print(f"ratio mlxsft/mlx_lm: decode {best(ours, 0) / best(theirs, 0):.3f}, "
          f"end-to-end {best(ours, 1) / best(theirs, 1):.3f}")
    warm_s, cold_s, reused = second_turn(view, tokenizer, template, 32)
    print(f"second chat turn: {warm_s:.3f}s reusing {reused} cached tokens vs {cold_s:.3f}s cold")


if __name__ == "__main__":
    main()
