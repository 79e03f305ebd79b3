"""Torch generation for chat / eval / the before/after table: cache reuse, views, agreement with HF generate."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from mlxsft.backends.torch.generate import (  # noqa: E402
    CachedGenerator,
    Sampling,
    load_views,
    render_prompt,
    stop_condition,
)
from mlxsft.train import run_training  # noqa: E402
from tests.helpers import make_cfg  # noqa: E402


@pytest.fixture(scope="module")
def run(tiny_llama_dir, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "run"
    run_training(make_cfg(tiny_llama_dir, data_dir, out, trainer="torch", iters=3, learning_rate=3e-2))
    return out


@pytest.fixture(scope="module")
def views(tiny_llama_dir, run):
    return load_views(str(tiny_llama_dir), run)


def test_views_share_weights_and_switch_the_adapter(tiny_llama_dir, views):
    from transformers import AutoModelForCausalLM

    _, v = views
    assert set(v) == {"tuned", "base"} and v["base"].model is v["tuned"].model
    ids = torch.tensor([[5, 6, 7, 8]])
    plain = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        with v["base"].activate():
            base = v["base"].model(input_ids=ids).logits
        tuned = v["tuned"].model(input_ids=ids).logits
        torch.testing.assert_close(base, plain(input_ids=ids).logits)
    assert not torch.allclose(base, tuned)


def test_greedy_matches_hf_generate_and_a_second_turn_reuses_the_cache(run, views):
    tok, v = views
    hf = tok._tokenizer
    template = (run / "chat_template.jinja").read_text()
    stop = stop_condition(tok, template)
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    gen = CachedGenerator(v["tuned"], tok)
    first = gen.generate(render_prompt(hf, msgs, template), Sampling(max_tokens=6), stop)
    assert first.tokens >= 1 and first.reused_tokens == 0

    prompt = render_prompt(hf, msgs, template)
    with torch.no_grad():
        ref = v["tuned"].model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=6, do_sample=False,
                                        eos_token_id=sorted(stop.token_ids), pad_token_id=0)
    want = ref[0, len(prompt):].tolist()
    fresh = CachedGenerator(v["tuned"], tok)
    got = fresh.generate(prompt, Sampling(max_tokens=6), stop)
    assert fresh.tokens[len(prompt):] == want[:-1] and got.tokens == len(want)  # the last token is never fed
    assert got.raw_text == hf.decode([t for t in want if t not in stop.token_ids])

    msgs2 = msgs + [{"role": "assistant", "content": first.raw_text}, {"role": "user", "content": "And 3+3?"}]
    prompt2 = render_prompt(hf, msgs2, template)
    second = gen.generate(prompt2, Sampling(max_tokens=6), stop)
    alone = CachedGenerator(v["tuned"], tok).generate(prompt2, Sampling(max_tokens=6), stop)
    assert second.reused_tokens > len(prompt) // 2
    assert second.raw_text == alone.raw_text and second.tokens == alone.tokens


def test_streaming_pieces_add_up_to_the_answer(run, views):
    tok, v = views
    template = (run / "chat_template.jinja").read_text()
    pieces: list[str] = []
    ans = CachedGenerator(v["base"], tok).generate(
        render_prompt(tok._tokenizer, [{"role": "user", "content": "Hi"}], template), Sampling(max_tokens=8),
        stop_condition(tok, template), on_text=pieces.append)
    assert "".join(pieces) == ans.text and ans.finish_reason in ("stop", "length")
