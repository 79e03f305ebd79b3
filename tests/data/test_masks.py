"""Golden loss masks per template family: every assistant turn and its end-of-turn token, never a header."""

from __future__ import annotations

import numpy as np
import pytest

from tests.data.conftest import chat
from tests.data.helpers import encode, supervised_runs, unsupervised_text

MULTI = chat("Hi!", "Hello.", "What is 2+2?", "4")


def test_chatml_golden_ids_and_mask(smol_tokenizer):
    ids, mask = encode(smol_tokenizer, chat("hi", "yo"))
    # <|im_start|>system\n(default SmolLM system prompt)<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n
    # <|im_start|>assistant\nyo<|im_end|>\n   -- only "yo<|im_end|>" is learned
    golden_ids = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
                  19712, 8182, 2, 198, 1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198, 31041, 2, 198]
    golden_mask = [0] * 31 + [1, 1, 0]
    assert ids.tolist() == golden_ids
    assert mask.tolist() == golden_mask
    assert ids.dtype == np.int32 and mask.dtype == np.int8


@pytest.mark.parametrize("family, eot, header", [
    ("smol", "<|im_end|>", "<|im_start|>assistant\n"),
    ("llama3", "<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    ("gemma", "<end_of_turn>", "<start_of_turn>model\n"),
])
def test_every_assistant_turn_with_its_end_of_turn_token(request, family, eot, header):
    tok = request.getfixturevalue("smol_tokenizer" if family == "smol" else f"{family}_tokenizer")
    ids, mask = encode(tok, MULTI)
    assert supervised_runs(tok, ids, mask) == [f"Hello.{eot}", f"4{eot}"]
    context = unsupervised_text(tok, ids, mask)
    assert context.count(header) == 2  # both role headers (and the generation prompt) stay context
    assert "Hi!" in context and "What is 2+2?" in context


@pytest.mark.parametrize("family, eot", [("smol", "<|im_end|>"), ("llama3", "<|eot_id|>"), ("gemma", "<end_of_turn>")])
def test_train_on_last_and_all(request, family, eot):
    tok = request.getfixturevalue("smol_tokenizer" if family == "smol" else f"{family}_tokenizer")
    ids, mask = encode(tok, MULTI, train_on="last")
    assert supervised_runs(tok, ids, mask) == [f"4{eot}"]
    ids, mask = encode(tok, MULTI, train_on="all")
    assert mask.tolist() == [0] + [1] * (len(ids) - 1)  # token 0 is never a target


def test_llama3_golden_tokens(llama3_tokenizer):
    tok = llama3_tokenizer
    ids, mask = encode(tok, chat("hi", "yo"))
    pieces = [(tok.decode([t]), m) for t, m in zip(ids.tolist(), mask.tolist())]
    assert pieces[0] == ("<|begin_of_text|>", 0)
    assert [p for p, m in pieces if m] == ["yo", "<|eot_id|>"]
    assert pieces[-1] == ("<|eot_id|>", 1)


def test_system_message_stays_a_system_message(smol_tokenizer, gemma_tokenizer):
    row = chat("hi", "yo", system="Answer in French.")
    ids, mask = encode(smol_tokenizer, row)
    text = smol_tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nhi")
    assert "SmolLM" not in text  # the template's default system prompt is replaced, not added
    ids, mask = encode(gemma_tokenizer, row)  # Gemma folds the system prompt into the first user turn
    assert gemma_tokenizer.decode(ids).startswith("<bos><start_of_turn>user\nAnswer in French.\n\nhi<end_of_turn>")
    assert supervised_runs(gemma_tokenizer, ids, mask) == ["yo<end_of_turn>"]


@pytest.mark.parametrize("row", [
    {"messages": [{"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4", "reasoning": "Two plus two is four."}]},
    {"messages": [{"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4", "reasoning_content": "Two plus two is four."}]},
    {"messages": [{"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "<think>\nTwo plus two is four.\n</think>\n\n4"}]},
], ids=["reasoning", "reasoning_content", "inline"])
def test_reasoning_rendered_the_way_the_template_expects(smol_tokenizer, reasoning_tokenizer, row):
    # SmolLM's template knows no reasoning field: the trace goes inline, before the answer, and is learned.
    ids, mask = encode(smol_tokenizer, row)
    assert supervised_runs(smol_tokenizer, ids, mask) == ["<think>\nTwo plus two is four.\n</think>\n\n4<|im_end|>"]
    # A Qwen3-style template reads reasoning_content and lays it out itself.
    ids, mask = encode(reasoning_tokenizer, row)
    assert supervised_runs(reasoning_tokenizer, ids, mask) == ["<think>\nTwo plus two is four.\n</think>\n\n4<|im_end|>"]
    assert reasoning_tokenizer.decode(ids).count("<think>") == 1


def test_template_that_drops_old_reasoning_still_masks_every_turn(reasoning_tokenizer):
    tok = reasoning_tokenizer
    row = {"messages": [
        {"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2", "reasoning": "one and one"},
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", "reasoning": "two and two"}]}
    ids, mask = encode(tok, row)
    # The first turn's reasoning is not in the rendered history, so only its answer is learned there.
    assert supervised_runs(tok, ids, mask) == ["2<|im_end|>", "<think>\ntwo and two\n</think>\n\n4<|im_end|>"]


def test_chat_template_kwargs_and_tools_reach_the_template(reasoning_tokenizer):
    tok = reasoning_tokenizer
    from mlxsft.data.templates import TemplateRenderer

    r = TemplateRenderer(tok, tok.chat_template, {"enable_thinking": False})
    prompt = r.render([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    row = {**chat("Weather in Paris?", "Sunny."), "tools": tools}
    ids, mask = encode(tok, row, chat_template_kwargs={"enable_thinking": False})
    assert "get_weather" in tok.decode(ids)
    assert supervised_runs(tok, ids, mask) == ["Sunny.<|im_end|>"]


def test_default_chatml_for_a_tokenizer_without_template(plain_tokenizer):
    from mlxsft.data import DEFAULT_CHATML, resolve_chat_template

    assert resolve_chat_template(plain_tokenizer, None) == DEFAULT_CHATML
    ids, mask = encode(plain_tokenizer, MULTI)
    assert plain_tokenizer.decode(ids).startswith("<|im_start|>user\nHi!<|im_end|>\n")
    assert supervised_runs(plain_tokenizer, ids, mask) == ["Hello.<|im_end|>", "4<|im_end|>"]


def test_default_chatml_puts_bos_first_and_lists_tools(gemma_tokenizer):
    from mlxsft.data import DEFAULT_CHATML
    from mlxsft.data.templates import TemplateRenderer

    r = TemplateRenderer(gemma_tokenizer, DEFAULT_CHATML)
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    text = r.render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], tools,
                    add_generation_prompt=True)
    assert text.startswith("<bos><|im_start|>system\nBe brief.\n\nYou can call these tools:\n")
    assert "get_weather" in text and text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert r.end_of_turn == "<|im_end|>"


def test_chat_template_file_override(smol_tokenizer, tmp_path):
    from tests.data.templates import LLAMA3

    (tmp_path / "t.jinja").write_text(LLAMA3)
    ids, mask = encode(smol_tokenizer, chat("hi", "yo"), chat_template=str(tmp_path / "t.jinja"))
    assert "<|start_header_id|>assistant<|end_header_id|>" in smol_tokenizer.decode(ids)
    assert supervised_runs(smol_tokenizer, ids, mask) == ["yo<|eot_id|>"]


def test_prompt_turns_and_weight_zero_turns_are_not_learned(smol_tokenizer):
    pc = {"prompt": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."},
                     {"role": "user", "content": "2+2?"}],
          "completion": [{"role": "assistant", "content": "4"}]}
    ids, mask = encode(smol_tokenizer, pc)
    assert supervised_runs(smol_tokenizer, ids, mask) == ["4<|im_end|>"]
    weighted = {"messages": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello.", "weight": 0},
                             {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}
    ids, mask = encode(smol_tokenizer, weighted)
    assert supervised_runs(smol_tokenizer, ids, mask) == ["4<|im_end|>"]
