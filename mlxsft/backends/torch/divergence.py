"""The torch half of the forgetting score: a model view's log-probabilities at the positions of given answers.

    logp = answer_logprobs(view, prompt_ids, answer_ids)   # numpy float32, (len(answer), vocab)

The twin of ``mlxsft/backends/mlx/divergence.py``; ``mlxsft.learned.drift`` compares two views with it. For a
PEFT run the base view is the same model inside ``disable_adapter()``.
"""

from __future__ import annotations

import numpy as np

from mlxsft.backends.generation import ModelView


def answer_logprobs(view: ModelView, prompt: list[int], answer: list[int]) -> np.ndarray:
    """log p(. | prefix) at the positions that predict each answer token: (len(answer), vocab)."""
    import torch

    model = view.model
    ids = torch.tensor([list(prompt) + list(answer)], device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), view.activate():
            logits = model(input_ids=ids[:, :-1]).logits[0, len(prompt) - 1:].float()
    finally:
        model.train(was_training)
    return torch.log_softmax(logits, dim=-1).cpu().numpy()
