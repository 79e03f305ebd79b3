"""The forgetting score on both backends: KL(base || tuned) and NLL per answer token.

On a tiny trained run: ``drift`` (with the backend's ``answer_logprobs``) of the base against itself is 0, and
against the tuned view it equals the same sums worked out in numpy (float64) from the two models' full logits;
``measure_forgetting`` divides by the tokens.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlxsft.backends import registry
from mlxsft.learned import drift, measure_forgetting
from mlxsft.train import run_training
from tests.helpers import make_cfg

SEQUENCES = [([1, 5, 9, 13, 17], [21, 25, 29]), ([2, 40, 41], [42, 43, 44, 45, 46]), ([3, 7], [8])]


@pytest.fixture(scope="module", params=["mlx", "torch"])
def views(request, tiny_llama_dir, data_dir, tmp_path_factory):
    backend = request.param
    if backend == "torch":
        pytest.importorskip("torch")
        pytest.importorskip("peft")
    out = tmp_path_factory.mktemp(f"drift-{backend}") / "run"
    lr = 3e-2 if backend == "mlx" else 5e-2
    run_training(make_cfg(tiny_llama_dir, data_dir, out, trainer=backend, iters=3, learning_rate=lr))
    _, v = registry.part(backend, "generate").load_views(str(tiny_llama_dir), out)
    return backend, v


def logits(backend: str, view, ids: list[int]) -> np.ndarray:
    """The model's next-token logits at every position, float64 numpy."""
    if backend == "mlx":
        import mlx.core as mx

        with view.activate():
            out = view.model(mx.array([ids]))[0].astype(mx.float32)
            mx.eval(out)
        return np.array(out, dtype=np.float64)
    import torch

    with torch.no_grad(), view.activate():
        return view.model(input_ids=torch.tensor([ids])).logits[0].double().numpy()


def numpy_drift(backend: str, base, tuned) -> tuple[float, float, float, int]:
    kl = tn = bn = 0.0
    n = 0
    for prompt, answer in SEQUENCES:
        ids = prompt + answer
        rows = slice(len(prompt) - 1, len(ids) - 1)  # the positions that predict the answer tokens
        lb, lt = logits(backend, base, ids)[rows], logits(backend, tuned, ids)[rows]
        lb = lb - np.log(np.exp(lb - lb.max(-1, keepdims=True)).sum(-1, keepdims=True)) - lb.max(-1, keepdims=True)
        lt = lt - np.log(np.exp(lt - lt.max(-1, keepdims=True)).sum(-1, keepdims=True)) - lt.max(-1, keepdims=True)
        kl += float((np.exp(lb) * (lb - lt)).sum())
        tn -= float(lt[np.arange(len(answer)), answer].sum())
        bn -= float(lb[np.arange(len(answer)), answer].sum())
        n += len(answer)
    return kl, tn, bn, n


def test_a_model_has_not_drifted_from_itself(views):
    backend, v = views
    kl, tuned_nll, base_nll, n = drift(registry.part(backend, "divergence").answer_logprobs, v["base"], v["base"],
                                       SEQUENCES)
    assert n == 9 and abs(kl) < 1e-5 and tuned_nll == pytest.approx(base_nll, rel=1e-6)


def test_drift_equals_a_numpy_computation(views):
    backend, v = views
    got = drift(registry.part(backend, "divergence").answer_logprobs, v["base"], v["tuned"], SEQUENCES)
    want = numpy_drift(backend, v["base"], v["tuned"])
    assert got[3] == want[3] == 9
    assert want[0] > 1e-4  # training moved the model, so the test can tell a wrong KL from 0
    np.testing.assert_allclose(got[:3], want[:3], rtol=2e-4, atol=1e-5)


def test_measure_forgetting_divides_by_the_answer_tokens(views):
    backend, v = views

    class Scripted:
        def __init__(self, ids):
            self.token_ids = ids

    prompts = [[{"role": "user", "content": str(i)}] for i in range(len(SEQUENCES))]
    rendered = {str(i): p for i, (p, _) in enumerate(SEQUENCES)}
    logprobs = registry.part(backend, "divergence").answer_logprobs
    f = measure_forgetting(prompts, lambda convs: [Scripted(a) for _, a in SEQUENCES],
                           lambda seqs: drift(logprobs, v["base"], v["tuned"], seqs),
                           lambda msgs: rendered[msgs[-1]["content"]])
    kl, tn, bn, n = numpy_drift(backend, v["base"], v["tuned"])
    assert (f.prompts, f.tokens) == (3, 9)
    assert f.kl == pytest.approx(kl / n, rel=2e-4) and f.tuned_nll == pytest.approx(tn / n, rel=2e-4)
    assert f.base_nll == pytest.approx(bn / n, rel=2e-4)
