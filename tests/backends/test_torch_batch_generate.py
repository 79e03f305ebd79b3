"""Batched torch generation (the before/after table): left-padded chunks give the same greedy answers as
``generate_answer`` one by one, in the callers' order, and a row stops where it would stop alone."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mlxsft.backends.torch.device import pick_device  # noqa: E402
from mlxsft.backends.torch.generate import (  # noqa: E402
    CachedGenerator,
    ModelView,
    Sampling,
    TorchTokenizer,
    generate_answer,
    generate_answers_batch,
    render_prompt,
    stop_condition,
)
from mlxsft.backends.torch.model import load_model  # noqa: E402
from tests.helpers import GENERATION_CONVS  # noqa: E402

MAX_TOKENS = 12
CONVS = GENERATION_CONVS  # different lengths, out of length order (tests/helpers.py)
# end of turn as a template variable: the prompts (user turns only) never contain it, so the greedy
# tokens do not depend on it, and a marker taken from an answer makes that answer stop on text
MARKED = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% if m['role'] == 'assistant' %}"
          "{{ marker }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.fixture(scope="module")
def loaded(tiny_llama_dir):
    model, hf, _ = load_model(str(tiny_llama_dir), pick_device("cpu"))
    return model.eval(), hf


def one_by_one(model, tokenizer, template, convs=CONVS, **kw):
    return [generate_answer(model, tokenizer, c, template, max_tokens=MAX_TOKENS, **kw) for c in convs]


KEYS = ("text", "finish_reason", "tokens", "raw_text", "prompt_tokens", "token_ids")


def comparable(answer) -> dict:
    """What must agree (``token_ids`` where the Answer has it); time and speed differ by nature."""
    return {k: getattr(answer, k, None) for k in KEYS}


def assert_same(batched, alone):
    assert [comparable(a) for a in batched] == [comparable(a) for a in alone]


def stop_on(hf, token: int) -> TorchTokenizer:
    """The tokenizer with ``token`` as one more EOS id: a turn that emits it stops there."""
    return TorchTokenizer(hf, {token})


@pytest.fixture(scope="module")
def alone(loaded):
    model, hf = loaded
    return one_by_one(model, hf, hf.chat_template)


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_batched_greedy_equals_one_by_one_in_order(loaded, alone, batch_size):
    model, hf = loaded
    batched = generate_answers_batch(model, hf, CONVS, hf.chat_template, max_tokens=MAX_TOKENS,
                                     batch_size=batch_size)
    assert_same(batched, alone)
    assert len({a.prompt_tokens for a in alone}) == len(CONVS)  # every chunk of 3 or 32 is padded
    assert all(a.finish_reason == "length" and a.tokens == MAX_TOKENS for a in batched)  # no EOS by chance
    assert len({a.text for a in batched}) == len(CONVS)  # the answers are told apart: the order is checked
    for a in batched:
        assert a.tokens_per_sec > 0 and a.elapsed_s > 0


def greedy_ids(model, hf, conv, template, **kw) -> list[int]:
    """The tokens one-by-one generation emits (all but the last: what its cache was fed), read without
    relying on ``Answer.token_ids``."""
    tok = TorchTokenizer(hf)
    prompt = render_prompt(hf, conv, template, kw.get("template_kwargs"))
    gen = CachedGenerator(ModelView("m", model), tok)
    gen.generate(prompt, Sampling(max_tokens=MAX_TOKENS), stop_condition(tok, template, kw.get("template_kwargs")))
    return gen.tokens[len(prompt):]


@pytest.fixture(scope="module")
def forced_stop(loaded):
    """(where, tokenizer, answers one by one): conversation 0 meets a token of its greedy answer (5th or
    later) that no other answer holds, and the tokenizer stops on that token."""
    model, hf = loaded
    ids = [greedy_ids(model, hf, c, hf.chat_template) for c in CONVS]
    others = {t for row in ids[1:] for t in row}
    picks = [i for i, t in enumerate(ids[0]) if i >= 4 and t not in others and t not in ids[0][:i]]
    assert picks, "the random model answers too alike to pick a stop token"
    tok = stop_on(hf, ids[0][picks[0]])
    return picks[0], tok, one_by_one(model, tok, hf.chat_template)


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_a_stop_token_ends_its_row_only(loaded, forced_stop, batch_size):
    model, hf = loaded
    at, tok, alone = forced_stop
    batched = generate_answers_batch(model, tok, CONVS, hf.chat_template, max_tokens=MAX_TOKENS,
                                     batch_size=batch_size)
    assert_same(batched, alone)
    assert batched[0].finish_reason == "stop" and batched[0].tokens == at + 1  # the stop token counted
    assert len(getattr(batched[0], "token_ids", [None] * at)) == at  # ... but not among the answer's ids
    assert [a.finish_reason for a in batched[1:]] == ["length"] * (len(CONVS) - 1)
    assert all(a.tokens == MAX_TOKENS for a in batched[1:])


def test_a_stopped_row_leaves_the_batch_and_the_others_answer_as_alone(loaded, forced_stop):
    model, hf = loaded
    at, tok, alone = forced_stop
    rows_per_step = []
    hook = model.register_forward_pre_hook(lambda mod, args, kw: rows_per_step.append(kw["input_ids"].shape[0]),
                                           with_kwargs=True)
    try:
        batched = generate_answers_batch(model, tok, CONVS[:3], hf.chat_template, max_tokens=MAX_TOKENS,
                                         batch_size=3)
    finally:
        hook.remove()
    assert_same(batched, alone[:3])
    # the prompts' shared start in one row, the rest of the prefill and the steps up to the stop with 3 rows,
    # the rest with 2 (a third stopped: at most 3/4 live)
    assert rows_per_step == [1] + [3] * (at + 1) + [2] * (MAX_TOKENS - at - 1), rows_per_step


def test_what_every_prompt_starts_with_is_computed_once(loaded, alone):
    from mlxsft.backends.generation import MIN_SHARED, common_start, render_prompt

    model, hf = loaded
    prompts = [render_prompt(hf, c, hf.chat_template) for c in CONVS]
    shared = common_start([p[:-1] for p in prompts])  # each prompt keeps its last token to feed
    assert shared >= MIN_SHARED  # SmolLM2's template: its header and default system prompt
    shapes = []
    hook = model.register_forward_pre_hook(lambda mod, args, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                           with_kwargs=True)
    try:
        batched = generate_answers_batch(model, hf, CONVS, hf.chat_template, max_tokens=MAX_TOKENS,
                                         batch_size=len(CONVS))
    finally:
        hook.remove()
    assert_same(batched, alone)
    assert shapes[:2] == [(1, shared), (len(CONVS), max(map(len, prompts)) - shared)], shapes[:3]


def test_a_chunk_ends_when_all_its_rows_stopped(loaded, forced_stop):
    model, hf = loaded
    at, tok, _ = forced_stop
    calls = []
    hook = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        answers = generate_answers_batch(model, tok, [CONVS[0], CONVS[0]], hf.chat_template,
                                         max_tokens=MAX_TOKENS, batch_size=2)
    finally:
        hook.remove()
    assert [a.finish_reason for a in answers] == ["stop", "stop"]
    # the shared start (both prompts but their last token), prefill, one step per further token, none after the stop
    assert len(calls) == 1 + at + 1 < MAX_TOKENS


def test_an_end_of_turn_text_ends_its_row(loaded):
    model, hf = loaded
    ids = greedy_ids(model, hf, CONVS[0], MARKED, template_kwargs={"marker": "@@"})
    marker = next((m for i in range(3, len(ids) - 1)
                   if (m := hf.decode(ids[i:i + 2]).strip()) and "\n" not in m and "\ufffd" not in m
                   and len(hf.encode(m, add_special_tokens=False)) > 1), None)
    assert marker, "no multi-token text in the answer to stop on"
    kw = dict(template_kwargs={"marker": marker})
    assert stop_condition(TorchTokenizer(hf), MARKED, kw["template_kwargs"]).text == marker  # a text stop
    alone = one_by_one(model, hf, MARKED, **kw)
    for batch_size in (1, 3, 32):
        batched = generate_answers_batch(model, hf, CONVS, MARKED, max_tokens=MAX_TOKENS, batch_size=batch_size, **kw)
        assert_same(batched, alone)
        assert batched[0].finish_reason == "stop" and marker not in batched[0].raw_text


def test_peft_base_view_answers_as_the_plain_model(tiny_llama_dir, loaded, alone):
    peft = pytest.importorskip("peft")
    _, hf = loaded
    model, _, _ = load_model(str(tiny_llama_dir), pick_device("cpu"))
    tuned = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))  # random B: the adapter matters
    tuned.train()
    base = generate_answers_batch(tuned, hf, CONVS, hf.chat_template, max_tokens=MAX_TOKENS, batch_size=3,
                                  activate=tuned.disable_adapter)
    assert_same(base, alone)  # the plain model's answers
    with_adapter = generate_answers_batch(tuned, hf, CONVS, hf.chat_template, max_tokens=MAX_TOKENS, batch_size=3)
    assert_same(with_adapter, one_by_one(tuned, hf, hf.chat_template))
    assert [a.text for a in with_adapter] != [a.text for a in base]
    assert tuned.training  # generation ran in eval mode and gave training mode back
