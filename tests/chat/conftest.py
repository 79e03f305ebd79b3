"""Fixtures for the chat tests: the SmolLM2 tokenizer as mlx-lm wraps it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def wrapped_tokenizer(smol_tokenizer):
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    return TokenizerWrapper(smol_tokenizer)
