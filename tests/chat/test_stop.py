"""Where a chat answer stops: the template's end-of-turn token, EOS, a multi-token end-of-turn text, max tokens.

Runs on a scripted model (tests/chat/scripted.py), so the expected output is exact.
"""

from __future__ import annotations

import pytest

from mlxsft.backends.generation import StopTextFilter
from mlxsft.backends.mlx import generate as G
from tests.chat.scripted import CHATML_END, scripted


def _prompt(tok, template=None):
    hf = tok._tokenizer
    return G.render_prompt(hf, [{"role": "user", "content": "hi"}], template or hf.chat_template)


def test_stops_at_the_templates_end_of_turn_token(wrapped_tokenizer):
    tok = wrapped_tokenizer
    hello, there, garbage = tok.encode("Hello there garbage", add_special_tokens=False)
    im_end = tok.convert_tokens_to_ids(CHATML_END)
    stop = G.stop_condition(tok, tok._tokenizer.chat_template)
    assert im_end in stop.token_ids and stop.text == ""
    ans = scripted(tok, [hello, there, im_end, garbage]).generate(_prompt(tok), G.Sampling(max_tokens=20), stop)
    assert (ans.text, ans.finish_reason, ans.tokens) == ("Hello there", "stop", 3)


def test_stops_at_eos_when_the_template_ends_turns_otherwise(wrapped_tokenizer):
    tok = wrapped_tokenizer
    template = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|endoftext|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    stop = G.stop_condition(tok, template)
    endoftext, eos = tok.convert_tokens_to_ids("<|endoftext|>"), tok.eos_token_id
    assert {endoftext, eos} <= stop.token_ids
    hello, there, garbage = tok.encode("Hello there garbage", add_special_tokens=False)
    for end in (endoftext, eos):
        ans = scripted(tok, [hello, there, end, garbage]).generate(_prompt(tok, template),
                                                                   G.Sampling(max_tokens=20), stop)
        assert (ans.text, ans.finish_reason) == ("Hello there", "stop")


def test_a_multi_token_end_of_turn_is_matched_as_text_and_never_shown(wrapped_tokenizer):
    tok = wrapped_tokenizer
    template = ("{% for m in messages %}{{ m.role }}: {{ m.content }}\n### END\n{% endfor %}"
                "{% if add_generation_prompt %}assistant: {% endif %}")
    stop = G.stop_condition(tok, template)
    assert stop.text == "### END"
    script = tok.encode("Hi ### END more", add_special_tokens=False)
    shown: list[str] = []
    ans = scripted(tok, script).generate(_prompt(tok, template), G.Sampling(max_tokens=20), stop,
                                         on_text=shown.append)
    assert ans.text.strip() == "Hi" and ans.finish_reason == "stop"
    assert "#" not in "".join(shown)


def test_max_tokens_ends_a_runaway_answer(wrapped_tokenizer):
    tok = wrapped_tokenizer
    a, b = tok.encode("la la", add_special_tokens=False)[:2]
    stop = G.stop_condition(tok, tok.chat_template)
    ans = scripted(tok, [a, b, a]).generate(_prompt(tok), G.Sampling(max_tokens=7), stop)
    assert ans.finish_reason == "length" and ans.tokens == 7


@pytest.mark.parametrize("pieces", [["Hello wor", "ld ##", "# E", "ND tail"], ["Hello world ### END"],
                                    list("Hello world ### END tail")])
def test_stop_text_filter_cuts_exactly_and_holds_back_prefixes(pieces):
    cut = StopTextFilter("### END")
    out = ""
    for p in pieces:
        out += cut.feed(p)
        assert "#" not in out
        if cut.hit:
            break
    assert cut.hit and out == "Hello world "
