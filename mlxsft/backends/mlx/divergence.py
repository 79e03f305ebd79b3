"""The MLX half of the forgetting score: a model view's log-probabilities at the positions of given answers.

    logp = answer_logprobs(view, prompt_ids, answer_ids)   # numpy float32, (len(answer), vocab)

``mlxsft.learned.drift`` compares two views with it (KL(base || tuned), each model's NLL of the answer).
Full-vocabulary log-softmax at the answer positions only, one sequence at a time.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from mlxsft.backends.generation import ModelView


def answer_logprobs(view: ModelView, prompt: list[int], answer: list[int]) -> np.ndarray:
    """log p(. | prefix) at the positions that predict each answer token: (len(answer), vocab)."""
    ids = mx.array([list(prompt) + list(answer)])
    with view.activate():
        logits = view.model(ids[:, :-1])[0, len(prompt) - 1:].astype(mx.float32)
        out = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        mx.eval(out)
    return np.array(out)
