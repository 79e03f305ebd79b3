"""Fixtures for the data tests: tokenizers per template family, and small dataset writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxsft.config import DataConfig
from tests.data.templates import GEMMA, LLAMA3, REASONING


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chat(*turns: str, system: str | None = None) -> dict:
    """A messages row from alternating user/assistant texts."""
    msgs = [{"role": "system", "content": system}] if system else []
    msgs += [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]
    return {"messages": msgs}


def data_cfg(**kw) -> DataConfig:
    return DataConfig(**kw)


def _family(smol_tokenizer_dir: Path, template: str, bos: str, specials: list[str]):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    # The family's markers become single special tokens, as in the real tokenizers.
    tok.add_special_tokens({"additional_special_tokens": specials, "bos_token": bos})
    tok.chat_template = template
    return tok


@pytest.fixture(scope="session")
def llama3_tokenizer(smol_tokenizer_dir):
    return _family(smol_tokenizer_dir, LLAMA3, "<|begin_of_text|>",
                   ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])


@pytest.fixture(scope="session")
def gemma_tokenizer(smol_tokenizer_dir):
    return _family(smol_tokenizer_dir, GEMMA, "<bos>", ["<bos>", "<start_of_turn>", "<end_of_turn>"])


@pytest.fixture(scope="session")
def reasoning_tokenizer(smol_tokenizer_dir):
    return _family(smol_tokenizer_dir, REASONING, "<|im_start|>", ["<think>", "</think>"])


@pytest.fixture(scope="session")
def plain_tokenizer(smol_tokenizer_dir):
    """A base-model tokenizer: no chat template at all."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    tok.chat_template = None
    return tok
