"""Fixtures for the curation tests: prompt files, a scripted teacher, the tiny MLX model folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxsft.data.curation.teachers import Completion, Sampling
from tests.data.conftest import write_jsonl

__all__ = ["write_jsonl"]  # the curation tests import it from here


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


ARITHMETIC = [(a, b) for a, b in ((2, 3), (7, 5), (10, 4), (6, 6), (9, 8), (12, 3))]


def arithmetic_prompts(path: Path) -> Path:
    return write_jsonl(path, [{"id": f"add-{a}-{b}", "question": f"What is {a} + {b}? Reply with the number only.",
                               "reference": str(a + b)} for a, b in ARITHMETIC])


class ScriptedTeacher:
    """Answers from a function of (conversation, how many times this conversation was asked before).

    ``fail_after`` raises KeyboardInterrupt when that many batches have been answered (a Ctrl-C mid-run).
    """

    def __init__(self, answer, name: str = "scripted", fail_after: int | None = None):
        self.answer, self.name, self.fail_after = answer, name, fail_after
        self.asked: dict[str, int] = {}
        self.batches: list[int] = []

    def complete(self, conversations: list[list[dict]], sampling: Sampling) -> list[Completion]:
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise KeyboardInterrupt
        self.batches.append(len(conversations))
        out = []
        for msgs in conversations:
            q = msgs[-1]["content"]
            n = self.asked.get(q, 0)
            self.asked[q] = n + 1
            result = self.answer(q, n)
            if not isinstance(result, Completion):
                result = Completion(text=result, tokens=len(result.split()))
            out.append(result)
        return out

    def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def tiny_mlx_dir(tiny_llama_dir) -> Path:
    """The tiny random llama converted to an MLX folder (what mlx_lm.server and load_mlx read)."""
    from mlxsft.models import mlx_model_path

    return mlx_model_path(str(tiny_llama_dir))
