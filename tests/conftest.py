"""Shared fixtures: the SmolLM2 tokenizer and tiny random models, built once per session, and the memorisation
set on disk. The plain helpers they use are in tests/helpers.py."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.helpers import write_data
from tests.tiny import save_smol_tokenizer, smol_gguf_path, tiny_hf_model

# Tests never reach the Hub, and use their own conversion cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# A shell without job control starts background jobs with SIGINT ignored, and an ignored signal stays ignored
# in every process they start: the Ctrl-C tests (here and in the CLIs they run) need it delivered.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    os.environ["MLXSFT_CACHE"] = str(tmp_path_factory.mktemp("mlxsft-cache"))
    yield


@pytest.fixture(scope="session")
def smol_gguf() -> Path:
    return smol_gguf_path()


@pytest.fixture(scope="session")
def smol_tokenizer_dir(tmp_path_factory) -> Path:
    return save_smol_tokenizer(tmp_path_factory.mktemp("smol-tokenizer"))


@pytest.fixture(scope="session")
def smol_tokenizer(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smol_tokenizer_dir) -> Path:
    return tiny_hf_model(tmp_path_factory.mktemp("tiny-llama"), "llama", smol_tokenizer_dir)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """``write_data``'s train/valid split of the 8 rows, once per test module."""
    return write_data(tmp_path_factory.mktemp("data"))
