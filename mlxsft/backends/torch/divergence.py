"""How far a tuned torch model drifted from its base on given answers: the sums behind the forgetting score.

    kl, tuned_nll, base_nll, n = drift(base_view, tuned_view, [(prompt_ids, answer_ids), ...])

The torch twin of ``mlxsft/backends/mlx/divergence.py``: for every answer token, KL(base || tuned) between the
two next-token distributions and the NLL each model gives the token, summed (``mlxsft.learned`` divides).
For a PEFT run the base view is the same model inside ``disable_adapter()``.
"""

from __future__ import annotations

from mlxsft.backends.generation import ModelView


def _answer_logprobs(view: ModelView, prompt: list[int], answer: list[int]):
    import torch

    model = view.model
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt) + list(answer)], device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), view.activate():
            logits = model(input_ids=ids[:, :-1]).logits[0, len(prompt) - 1:].float()
    finally:
        model.train(was_training)
    return torch.log_softmax(logits, dim=-1)


def drift(base: ModelView, tuned: ModelView, sequences: list[tuple[list[int], list[int]]]) -> tuple[float, float, float, int]:
    import torch

    kl = tuned_nll = base_nll = 0.0
    n = 0
    for prompt, answer in sequences:
        if not answer or not prompt:
            continue
        lb = _answer_logprobs(base, prompt, answer)
        lt = _answer_logprobs(tuned, prompt, answer)
        idx = torch.tensor(answer, device=lb.device)[:, None]
        kl += float((lb.exp() * (lb - lt)).sum())
        tuned_nll -= float(lt.gather(-1, idx).sum())
        base_nll -= float(lb.gather(-1, idx).sum())
        n += len(answer)
    return kl, tuned_nll, base_nll, n
