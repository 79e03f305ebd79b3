"""The chat generator's KV cache on the tiny random llama: the next turn reuses it, an interrupt keeps it whole."""

from __future__ import annotations

import mlx.core as mx
import pytest

from mlxsft.backends.mlx import generate as G


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_dir):
    from mlxsft.models import load_mlx

    model, tok, _ = load_mlx(str(tiny_llama_dir))
    return model, tok


def test_next_turn_reuses_the_kv_cache_and_matches_a_fresh_prefill(tiny_model):
    model, tok = tiny_model
    hf = tok._tokenizer
    stop = G.stop_condition(tok, hf.chat_template)
    gen = G.CachedGenerator(G.ModelView("m", model), tok)
    msgs = [{"role": "user", "content": "hello"}]
    mx.random.seed(0)
    first = gen.generate(G.render_prompt(hf, msgs, hf.chat_template), G.Sampling(temp=1.0, max_tokens=12), stop)
    msgs += [{"role": "assistant", "content": first.raw_text}, {"role": "user", "content": "and then?"}]
    prompt = G.render_prompt(hf, msgs, hf.chat_template)
    second = gen.generate(prompt, G.Sampling(max_tokens=12), stop)
    assert second.reused_tokens >= first.prompt_tokens + first.tokens - 1  # the whole first turn came from the cache
    fresh = G.CachedGenerator(G.ModelView("m", model), tok).generate(prompt, G.Sampling(max_tokens=12), stop)
    assert fresh.reused_tokens == 0 and second.text == fresh.text


def test_an_interrupted_answer_keeps_the_cache_consistent(tiny_model):
    model, tok = tiny_model
    hf = tok._tokenizer
    stop = G.stop_condition(tok, hf.chat_template)
    gen = G.CachedGenerator(G.ModelView("m", model), tok)
    seen: list[str] = []
    ans = gen.generate(G.render_prompt(hf, [{"role": "user", "content": "x"}], hf.chat_template),
                       G.Sampling(temp=1.0, max_tokens=500), stop, on_text=seen.append,
                       should_stop=lambda: len(seen) >= 3)
    assert ans.finish_reason == "interrupted" and ans.tokens < 10
    assert len(gen.tokens) == gen.cache[0].offset == ans.prompt_tokens + ans.tokens
