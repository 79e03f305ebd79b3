"""Batched MLX generation (``mlxsft/backends/mlx/batch.py``) on the tiny random llama: greedy answers equal
``generate_answer`` one by one whatever the batch size (slots refilled as rows stop), a sampled answer depends
on its seed alone, a prompt asked K times is prefilled once, and a row that stopped is not decoded further."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mlx_lm")

from mlxsft.backends.mlx import batch  # noqa: E402
from mlxsft.backends.mlx.generate import generate_answer, generate_answers_batch  # noqa: E402
from mlxsft.backends.generation import MIN_SHARED, Sampling, common_start  # noqa: E402
from tests.helpers import GENERATION_CONVS  # noqa: E402

MAX_TOKENS = 10
CONVS = GENERATION_CONVS  # different lengths, out of length order (tests/helpers.py)
KEYS = ("text", "finish_reason", "tokens", "raw_text", "prompt_tokens", "token_ids")


@pytest.fixture(scope="module")
def loaded(tiny_llama_dir):
    from mlxsft.models import load_mlx

    model, tokenizer, _ = load_mlx(str(tiny_llama_dir))
    model.eval()
    return model, tokenizer, tokenizer._tokenizer.chat_template


def comparable(answers) -> list[dict]:
    return [{k: getattr(a, k) for k in KEYS} for a in answers]


def one_by_one(model, tokenizer, template):
    return [generate_answer(model, tokenizer, c, template, max_tokens=MAX_TOKENS) for c in CONVS]


class CountingModel:
    """The model, counting the rows each forward pass computes: prefill passes (several tokens a row) apart
    from decode passes (one)."""

    def __init__(self, model):
        self.model, self.prefill_rows, self.decode_rows, self.prefill_passes = model, 0, 0, []

    def __call__(self, tokens, cache=None):
        if tokens.shape[1] > 1:
            self.prefill_rows += tokens.shape[0]
            self.prefill_passes.append(tuple(tokens.shape))
        else:
            self.decode_rows += tokens.shape[0]
        return self.model(tokens, cache=cache)

    def __getattr__(self, name):
        return getattr(self.model, name)


@pytest.fixture(scope="module")
def alone(loaded):
    return one_by_one(*loaded)


@pytest.fixture()
def stop_on(loaded):
    """Make ``token`` one more EOS id for the test (a random model never stops by itself)."""
    _, tokenizer, _ = loaded
    before = set(tokenizer.eos_token_ids)

    def use(*tokens: int) -> None:
        tokenizer.eos_token_ids = before | set(tokens)

    yield use
    tokenizer.eos_token_ids = before


@pytest.mark.parametrize("batch_size", [1, 2, 32])
def test_batched_greedy_equals_one_by_one_in_order(loaded, alone, batch_size):
    model, tokenizer, template = loaded
    batched = generate_answers_batch(model, tokenizer, CONVS, template, max_tokens=MAX_TOKENS, batch_size=batch_size)
    assert comparable(batched) == comparable(alone)
    assert len({a.prompt_tokens for a in alone}) == len(CONVS)
    assert len({a.text for a in batched}) == len(CONVS)  # the answers are told apart: the order is checked


def test_prompts_prefilled_in_pieces_give_the_same_answers(loaded, alone, monkeypatch):
    model, tokenizer, template = loaded
    monkeypatch.setattr(batch, "PREFILL_STEP", 5)  # each prompt in several forward passes
    monkeypatch.setattr(batch, "PREFILL_TOKENS", 60)  # and the prompts in several prefill batches
    batched = generate_answers_batch(model, tokenizer, CONVS, template, max_tokens=MAX_TOKENS, batch_size=4)
    assert comparable(batched) == comparable(alone)


def test_rows_stopping_at_different_steps_refill_their_slots_and_match_one_by_one(loaded, alone, stop_on):
    model, tokenizer, template = loaded
    # stop each answer on a token it emits at a different step (where that token is new to it)
    stops = {a.token_ids[step] for a, step in zip(alone, (1, 3, 5)) if a.token_ids[step] not in a.token_ids[:step]}
    stop_on(*stops)
    stopped = one_by_one(model, tokenizer, template)
    assert len({a.tokens for a in stopped}) > 1 and any(a.finish_reason == "stop" for a in stopped)
    counted = CountingModel(model)
    batched = generate_answers_batch(counted, tokenizer, CONVS, template, max_tokens=MAX_TOKENS, batch_size=2)
    assert comparable(batched) == comparable(stopped)
    # two slots: an emptied one is refilled or dropped at once, so each row is decoded exactly as many times as
    # it has tokens (nothing after its stop, no padding rows)
    assert counted.decode_rows == sum(a.tokens for a in stopped)


def test_a_prompt_asked_k_times_is_prefilled_once(loaded):
    model, tokenizer, template = loaded
    counted = CountingModel(model)
    convs = [c for c in CONVS[:3] for _ in range(4)]
    answers = generate_answers_batch(counted, tokenizer, convs, template, max_tokens=4, batch_size=5,
                                     temp=1.0, seeds=list(range(len(convs))))
    # one row for what the three prompts start with (the template's header), then one row per prompt
    assert counted.prefill_rows == 1 + 3 and len(answers) == 12
    assert counted.decode_rows == sum(a.tokens for a in answers) == 12 * 4


def test_what_every_prompt_starts_with_is_computed_once(loaded):
    model, tokenizer, template = loaded
    hf = tokenizer._tokenizer
    from mlxsft.backends.generation import render_prompt

    prompts = [render_prompt(hf, c, template) for c in CONVS]
    bodies = [p[:-1] for p in prompts]
    shared = common_start(bodies)
    assert shared >= MIN_SHARED  # SmolLM2's template: its header and default system prompt
    assert all(b[:shared] == bodies[0][:shared] for b in bodies) and len({b[shared] for b in bodies}) > 1
    counted = CountingModel(model)
    kv = batch.prefill(counted, prompts)
    width = max(map(len, bodies))
    assert counted.prefill_passes == [(1, shared), (len(prompts), width - shared)]
    # the same keys and values as each prompt alone, in one pass
    for prompt, layers in zip(prompts, kv):
        alone = batch.prefill(model, [prompt])[0]  # one prompt: no shared pass
        assert len(layers) == len(alone)
        for (k, v), (k1, v1) in zip(layers, alone):
            assert k.shape == k1.shape == (1, k.shape[1], len(prompt) - 1, k.shape[3])
            np.testing.assert_allclose(np.array(k), np.array(k1), atol=1e-4)
            np.testing.assert_allclose(np.array(v), np.array(v1), atol=1e-4)


def test_common_start():
    assert common_start([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_start([[1, 2], [1, 2]]) == 2 and common_start([[5], [6]]) == 0
    assert common_start([[1, 2], []]) == 0 and common_start([]) == 0


def test_sampled_answers_depend_on_their_seed_alone(loaded):
    model, tokenizer, template = loaded
    k = 4
    convs = [CONVS[0]] * k + [CONVS[1]] * k
    seeds = [11, 12, 13, 14, 21, 22, 23, 24]
    kw = dict(max_tokens=MAX_TOKENS, temp=1.0)
    first = generate_answers_batch(model, tokenizer, convs, template, batch_size=8, seeds=seeds, **kw)
    again = generate_answers_batch(model, tokenizer, convs, template, batch_size=3, seeds=seeds, **kw)
    assert [a.token_ids for a in first] == [a.token_ids for a in again]  # another batch size, same answers
    assert len({tuple(a.token_ids) for a in first[:k]}) == k  # the K samples of a prompt differ
    alone = generate_answers_batch(model, tokenizer, [convs[5]], template, batch_size=1, seeds=[seeds[5]], **kw)
    assert alone[0].token_ids == first[5].token_ids  # the same answer without the other rows
    other = generate_answers_batch(model, tokenizer, [convs[5]], template, batch_size=1, seeds=[99], **kw)
    assert other[0].token_ids != first[5].token_ids


def test_top_p_keeps_only_the_likeliest_tokens(loaded):
    model, tokenizer, template = loaded
    greedy = generate_answers_batch(model, tokenizer, CONVS[:2], template, max_tokens=MAX_TOKENS)
    tiny_p = generate_answers_batch(model, tokenizer, CONVS[:2], template, max_tokens=MAX_TOKENS, temp=1.0,
                                    top_p=1e-6, seeds=[1, 2])
    assert [a.token_ids for a in tiny_p] == [a.token_ids for a in greedy]  # a nucleus of one token: the argmax


def test_the_sampler_draws_from_the_softmax_at_its_temperature():
    import mlx.core as mx

    from mlxsft.backends.mlx.batch import row_keys, sample

    logits = mx.array([[2.0, 0.0, 1.0, -1.0, 0.5]] * 20000)
    for temp, top_p in ((1.0, 1.0), (0.5, 1.0), (1.0, 0.8)):
        tokens, _ = sample(logits, Sampling(temp=temp, top_p=top_p, max_tokens=1), row_keys(range(20000)))
        freq = np.bincount(np.array(tokens), minlength=5) / 20000
        p = np.exp(np.array(logits[0]) / temp)
        p /= p.sum()
        if top_p < 1:  # the nucleus: the likeliest tokens whose mass reaches top_p, renormalised
            order = np.argsort(-p)
            keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p) + 1)]
            p = np.where(np.isin(np.arange(5), keep), p, 0) / p[keep].sum()
        assert np.abs(freq - p).max() < 0.015, (temp, top_p, freq, p)
    tokens, _ = sample(logits[:3], Sampling(temp=0.0, top_p=1.0, max_tokens=1), row_keys(range(3)))
    assert np.array(tokens).tolist() == [0, 0, 0]
