"""A scripted model for chat tests: a bigram table where each token names the next, so an answer is exact."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from mlxsft.backends.mlx import generate as G

CHATML_END = "<|im_end|>"


class ScriptedModel(nn.Module):
    """Answers every prompt with ``script``: token ``script[i]`` is always followed by ``script[i + 1]``."""

    def __init__(self, script: list[int], vocab: int = 49152):
        super().__init__()
        nxt = [script[0]] * vocab
        for a, b in zip(script, script[1:]):
            nxt[a] = b
        self._next = mx.array(nxt)
        self._vocab = vocab
        self.layers = [nn.Identity()]  # one KV cache, so offsets are tracked like a real model

    def __call__(self, inputs: mx.array, cache=None, **kw):
        if cache is not None:
            kv = mx.zeros((inputs.shape[0], 1, inputs.shape[1], 1))
            cache[0].update_and_fetch(kv, kv)
        return mx.where(mx.arange(self._vocab) == self._next[inputs][..., None], 10.0, -10.0)


def scripted(tokenizer, text_tokens: list[int]) -> G.CachedGenerator:
    return G.CachedGenerator(G.ModelView("m", ScriptedModel(text_tokens)), tokenizer)
