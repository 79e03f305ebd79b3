"""Modelfile values read back, through a port of Ollama's own parser, as exactly the text written: three quotes
inside a SYSTEM prompt cannot end the block early, and a text no Modelfile form can hold is left out with a
warning."""

from __future__ import annotations

import itertools

import pytest

from mlxsft.export.modelfile import FAMILIES, modelfile, modelfile_string
from mlxsft.export.stops import Stops, find_stops
from tests.export.ollama_modelfile import ModelfileSyntaxError, parse_modelfile

CHATML = next(f for f in FAMILIES if f.name == "chatml")


def chatml_with_default_system(system: str) -> str:
    """A ChatML template that injects ``system`` when a chat has no system message (as SmolLM2's does)."""
    return ("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n' }}{{ default_system }}"
            "{{ '<|im_end|>\\n' }}{% endif %}{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + "
            "m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant\\n' }}{% endif %}").replace("{{ default_system }}", "{{ %r }}" % system)


def test_the_parser_port_reads_a_modelfile_as_ollama_does():
    text = ('# comment\nFROM ./m.gguf\nTEMPLATE """{{ .Prompt }}\n"""\nSYSTEM """Say """hi""" please."""\n'
            'PARAMETER stop "<|im_end|>"\nPARAMETER num_ctx 4096\n')
    assert parse_modelfile(text) == [("model", "./m.gguf"), ("template", "{{ .Prompt }}\n"),
                                     ("system", 'Say """hi""" please.'), ("stop", "<|im_end|>"), ("num_ctx", "4096")]
    # what an unescaped writer produced: the block ends at the first line ending in """, the rest is garbage
    with pytest.raises(ModelfileSyntaxError):
        parse_modelfile('FROM m\nSYSTEM """Reply with """\nthen stop."""\n')


def test_system_with_triple_quotes_and_a_trailing_newline_reads_back_exactly(smol_tokenizer):
    system = 'Quote like this: """a quote""" and "this".\nKeep answers short.\n'
    template = chatml_with_default_system(system)
    text, warnings = modelfile("m.gguf", smol_tokenizer, template, find_stops(smol_tokenizer, template), name="m")
    commands = dict(parse_modelfile(text))
    assert commands["system"] == system and warnings == []
    assert commands["template"] == CHATML.go_template() and commands["stop"] == "<|im_end|>"


def test_a_system_text_no_modelfile_can_hold_is_left_out_with_a_warning(smol_tokenizer):
    system = 'End every answer with """\n'  # a line ending in """: Ollama would end the block there
    template = chatml_with_default_system(system)
    text, warnings = modelfile("m.gguf", smol_tokenizer, template, find_stops(smol_tokenizer, template), name="m")
    commands = parse_modelfile(text)  # still a valid Modelfile
    assert [n for n, _ in commands] == ["model", "template", "stop"]
    assert len(warnings) == 1 and warnings[0].startswith("Modelfile has no SYSTEM")


def test_stop_strings_are_written_as_ollama_reads_them(smol_tokenizer):
    stops = Stops(eos_id=2, eot_id=None, eot_text='a\\b"c', ids=[2], strings=['a\\b"c', '"', "<|im_end|>"])
    text, warnings = modelfile("m.gguf", smol_tokenizer, "{{ x }}", stops, name="m")
    assert [v for n, v in parse_modelfile(text) if n == "stop"] == ['a\\b"c', '"', "<|im_end|>"]
    assert 'PARAMETER stop "<|im_end|>"' in text.splitlines()


@pytest.mark.parametrize("block", [True, False])
def test_every_short_text_reads_back_or_is_refused(block):
    """All texts of up to 5 characters over the ones that matter to the parser."""
    refused = 0
    for n in range(1, 6):
        for chars in itertools.product('"a \t\n\r', repeat=n):
            text = "".join(chars)
            quoted = modelfile_string(text, block=block)
            if quoted is None:
                refused += 1
                # refused only when the block form really breaks: no needless refusals
                with pytest.raises((ModelfileSyntaxError, AssertionError)):
                    assert parse_modelfile(f'FROM m\nSYSTEM """{text}"""\n') == [("model", "m"), ("system", text)]
                continue
            assert parse_modelfile(f"FROM m\nSYSTEM {quoted}\n") == [("model", "m"), ("system", text)], repr(text)
    assert 0 < refused < 1000


def test_unprintable_characters_are_refused():
    assert modelfile_string("bell\x07") is None and modelfile_string("zero\u200bwidth") is None
    assert modelfile_string("") is None
