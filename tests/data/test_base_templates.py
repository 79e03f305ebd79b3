"""A base model's chat template: the family's own turn tokens when its vocabulary has them, ChatML otherwise.

A tokenizer without a chat template whose vocabulary holds Gemma's ``<start_of_turn>``/``<end_of_turn>`` (or
Llama 3's header tokens) as single tokens renders exactly what that family's instruct template renders, its
end of turn is one stop token, and the loss mask ends on it; without such tokens the fallback is ChatML.
"""

from __future__ import annotations

import pytest

from mlxsft.backends.generation import stop_condition
from mlxsft.data.templates import DEFAULT_CHATML, base_template, resolve_chat_template
from tests.data.conftest import _family, chat
from tests.data.helpers import encode, supervised_runs
from tests.data.templates import GEMMA, LLAMA3

ROWS = [chat("Hi!", "Hello."), chat("hi", "yo", "2+2?", "4", system="Answer in French.")]
FAMILIES = {
    "gemma": (GEMMA, "<bos>", ["<bos>", "<start_of_turn>", "<end_of_turn>"], "<end_of_turn>"),
    "llama3": (LLAMA3, "<|begin_of_text|>", ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                             "<|eot_id|>"], "<|eot_id|>"),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, smol_tokenizer_dir):
    name = request.param
    official, bos, specials, eot = FAMILIES[name]
    tok = _family(smol_tokenizer_dir, None, bos, specials)  # a base model: the tokens, no template
    return name, tok, official, eot


def test_the_family_is_recognised_and_renders_as_its_instruct_template(family):
    name, tok, official, _ = family
    assert tok.chat_template is None
    assert base_template(tok)[0] == name and resolve_chat_template(tok, None) == base_template(tok)[1]
    ours = base_template(tok)[1]
    for row in ROWS:
        msgs = row["messages"] if name == "gemma" else [m for m in row["messages"] if m["role"] != "system"]
        for gen in (False, True):
            prompt = msgs[:-1] if gen else msgs
            want = tok.apply_chat_template(prompt, chat_template=official, tokenize=False, add_generation_prompt=gen)
            assert tok.apply_chat_template(prompt, chat_template=ours, tokenize=False, add_generation_prompt=gen) == want


def test_end_of_turn_is_one_stop_token_and_learned(family):
    name, tok, _, eot = family
    template = base_template(tok)[1]
    stop = stop_condition(tok, template)
    assert tok.convert_tokens_to_ids(eot) in stop.token_ids and stop.text == ""
    tok.chat_template = template
    try:
        ids, mask = encode(tok, ROWS[1])
        assert supervised_runs(tok, ids, mask) == [f"yo{eot}", f"4{eot}"]
    finally:
        tok.chat_template = None


class ByteTokenizer:
    """A vocabulary without any turn token: every marker is several tokens."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode())


def test_without_turn_tokens_the_fallback_is_chatml(plain_tokenizer):
    assert base_template(ByteTokenizer()) == ("chatml", DEFAULT_CHATML)
    # SmolLM2's vocabulary has <|im_start|> and <|im_end|> as single tokens: ChatML is its own family there
    assert base_template(plain_tokenizer) == ("chatml", DEFAULT_CHATML)
