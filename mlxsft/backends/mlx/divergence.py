"""How far a tuned MLX model drifted from its base on given answers: the sums behind the forgetting score.

    kl, tuned_nll, base_nll, n = drift(base_view, tuned_view, [(prompt_ids, answer_ids), ...])

For every answer token: KL(base || tuned) between the two next-token distributions, and the NLL each model
gives the token. Sums over all answer tokens (``mlxsft.learned`` divides). Full-vocabulary log-softmax at
the answer positions only; one sequence at a time, so memory stays one row's logits.
"""

from __future__ import annotations

import mlx.core as mx

from mlxsft.backends.generation import ModelView


def _answer_logprobs(view: ModelView, prompt: list[int], answer: list[int]) -> mx.array:
    """log p(. | prefix) at the positions that predict each answer token: (len(answer), vocab)."""
    ids = mx.array([list(prompt) + list(answer)])
    with view.activate():
        logits = view.model(ids[:, :-1])[0, len(prompt) - 1:].astype(mx.float32)
        out = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        mx.eval(out)
    return out


def drift(base: ModelView, tuned: ModelView, sequences: list[tuple[list[int], list[int]]]) -> tuple[float, float, float, int]:
    kl = tuned_nll = base_nll = 0.0
    n = 0
    for prompt, answer in sequences:
        if not answer or not prompt:
            continue
        lb = _answer_logprobs(base, prompt, answer)
        lt = _answer_logprobs(tuned, prompt, answer)
        idx = mx.array(answer)[:, None]
        row_kl = (mx.exp(lb) * (lb - lt)).sum()
        nt = -mx.take_along_axis(lt, idx, axis=-1).sum()
        nb = -mx.take_along_axis(lb, idx, axis=-1).sum()
        mx.eval(row_kl, nt, nb)
        kl, tuned_nll, base_nll, n = kl + row_kl.item(), tuned_nll + nt.item(), base_nll + nb.item(), n + len(answer)
    return kl, tuned_nll, base_nll, n
