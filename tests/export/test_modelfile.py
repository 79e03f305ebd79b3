"""The Ollama Modelfile: template families checked against the real Jinja rendering, default system prompts,
stop lines, and the documented fallback for templates it does not translate."""

from __future__ import annotations

from mlxsft.data import DEFAULT_CHATML
from mlxsft.export.modelfile import FAMILIES, modelfile, translate
from mlxsft.export.stops import Stops, find_stops

# Llama 3 and Gemma templates as their tokenizers see them: those tokenizers add BOS themselves (so does
# llama.cpp, from the GGUF's add_bos_token), and the SmolLM2 tokenizer used here does not, so BOS is left out
LLAMA3 = ("{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
GEMMA = ("{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' "
         "else message['role'] %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")
ALPACA = ("{% for m in messages %}{% if m['role'] == 'user' %}### Instruction:\n{{ m['content'] }}\n\n"
          "{% else %}### Response:\n{{ m['content'] }}\n\n{% endif %}{% endfor %}"
          "{% if add_generation_prompt %}### Response:\n{% endif %}")


def test_chatml_family_with_smollm2_default_system(smol_tokenizer):
    tr = translate(smol_tokenizer, smol_tokenizer.chat_template)
    assert tr.family is not None and tr.family.name == "chatml"
    assert tr.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    tr = translate(smol_tokenizer, DEFAULT_CHATML)  # mlxsft's template for base models: no default system
    assert tr.family.name == "chatml" and tr.default_system is None


def test_llama3_and_gemma_families(smol_tokenizer):
    for template, name in ((LLAMA3, "llama3"), (GEMMA, "gemma")):
        tr = translate(smol_tokenizer, template)
        assert tr.family is not None and tr.family.name == name, tr.problem
        assert tr.default_system is None


def test_family_markers_reproduce_the_jinja_rendering(smol_tokenizer):
    """What the Go template emits (the family's markers around each message) is what Jinja renders."""
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
            {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}]
    chatml = next(f for f in FAMILIES if f.name == "chatml")
    rendered = smol_tokenizer.apply_chat_template(msgs, chat_template=DEFAULT_CHATML, tokenize=False,
                                                  add_generation_prompt=True)
    assert rendered == chatml.assemble(msgs)
    go = chatml.go_template()
    for piece in ("<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>\n"):
        assert piece in go
    assert "{{-" not in go and "-}}" not in go  # trimming would eat the newlines inside the markers


def test_bos_written_by_the_template_but_not_added_by_the_tokenizer_falls_back(smol_tokenizer):
    # llama.cpp would not add it (add_bos_token false), and the family's TEMPLATE does not write it
    tr = translate(smol_tokenizer, "{{ bos_token }}" + LLAMA3)
    assert tr.family is None and "differently" in tr.problem


def test_unknown_or_different_templates_fall_back_without_template(smol_tokenizer):
    stops = find_stops(smol_tokenizer, ALPACA)
    text, warnings = modelfile("m.gguf", smol_tokenizer, ALPACA, stops, name="m")
    assert "TEMPLATE" not in text.replace("# No TEMPLATE", "") and "FROM ./m.gguf" in text
    assert warnings and "not ChatML, Llama 3 or Gemma" in warnings[0]
    # ChatML markers, but turns end with <|endoftext|>: the check catches it
    odd = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tr = translate(smol_tokenizer, odd)
    assert tr.family is None and "differently from plain chatml" in tr.problem


def test_stop_lines_name_end_of_turn_and_eos(smol_tokenizer):
    stops = Stops(eos_id=2, eot_id=0, eot_text="<|endoftext|>", ids=[2, 0], strings=["<|endoftext|>", "<|im_end|>"])
    text, _ = modelfile("m.gguf", smol_tokenizer, DEFAULT_CHATML, stops, name="m")
    assert [ln for ln in text.splitlines() if ln.startswith("PARAMETER")] == [
        'PARAMETER stop "<|endoftext|>"', 'PARAMETER stop "<|im_end|>"']


def test_find_stops(smol_tokenizer):
    s = find_stops(smol_tokenizer, DEFAULT_CHATML)
    assert (s.eos_id, s.eot_id, s.eot_text, s.ids, s.strings) == (2, 2, "<|im_end|>", [2], ["<|im_end|>"])
    s = find_stops(smol_tokenizer, LLAMA3, base_eos_ids=[0])
    # "<|eot_id|>" is not in SmolLM2's vocabulary: several tokens, so only a stop string
    assert s.eot_text == "<|eot_id|>" and s.eot_id is None and not s.eot_is_token
    assert s.ids == [2, 0] and s.strings[0] == "<|eot_id|>"
