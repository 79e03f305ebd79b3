"""The vocabulary head in chunks (both backends): the same loss and gradients as the whole-logits loss, with
memory bounded by the chunk instead of supervised positions x vocabulary (issue 21, Gemma 3's 262k vocabulary).

Each backend's reference is its plain path: every position's logits at once, differentiated by the framework.
The chunked path is forced into many chunks (32 positions) on rows with ~500 supervised targets.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlxsft.backends.base import head_chunk_rows


def _batch(rows=2, length=256, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(10, 40000, size=(rows, length))
    mask = np.zeros_like(ids)
    mask[:, length // 3:] = 1  # the first third is prompt
    return ids, mask


def test_chunk_rows_bound_the_logits():
    assert head_chunk_rows(262144) == 64  # Gemma 3: 64 x 262k fp32 = 64 MB per chunk
    assert head_chunk_rows(49152) == 320
    assert head_chunk_rows(10) % 32 == 0 and head_chunk_rows(10_000_000) == 32  # never below the padding


# ----------------------------------------------------------------------------------------------------- MLX
@pytest.fixture(scope="module")
def mlx_model(tiny_llama_dir):
    from mlx_lm import load

    model, _ = load(str(tiny_llama_dir))
    return model


@pytest.mark.parametrize("trains", ["lora-like", "full"])
def test_mlx_chunked_head_matches_whole_logits(mlx_model, trains):
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    from mlxsft.backends.mlx.loss import head_grad_of, supervised_selection, token_nll

    model = mlx_model
    model.unfreeze()
    if trains == "lora-like":  # the body trains, the (tied) head does not: gradients reach it through hidden
        model.freeze(keys=["weight"], strict=False)
        model.unfreeze(keys=["weight"], strict=False)
        model.model.embed_tokens.freeze()
    assert head_grad_of(model) == ("hidden+weight" if trains == "full" else "hidden")
    ids, mask = (mx.array(a) for a in _batch())
    select = tuple(mx.array(a) for a in supervised_selection(np.array(mask)))

    def whole(m):
        return token_nll(m, ids, mask)[0]

    def chunked(m):
        return token_nll(m, ids, mask, select=select, head_grad=head_grad_of(m), head_chunk=32)[0]

    (ref, ref_g), (got, got_g) = nn.value_and_grad(model, whole)(model), nn.value_and_grad(model, chunked)(model)
    mx.eval(ref, ref_g, got, got_g)
    assert float(got) == pytest.approx(float(ref), rel=2e-6)
    ref_g, got_g = dict(tree_flatten(ref_g)), dict(tree_flatten(got_g))
    assert ref_g.keys() == got_g.keys() and ("model.embed_tokens.weight" in got_g) == (trains == "full")
    for k in ref_g:
        r, g = np.array(ref_g[k]), np.array(got_g[k])
        assert np.abs(g - r).max() <= 1e-5 * max(np.abs(r).max(), 1e-6), k
    # validation / scoring (no gradient) chunks too, to the same loss
    assert float(token_nll(model, ids, mask, select=select, head_chunk=32)[0]) == pytest.approx(float(ref), rel=2e-6)


def test_mlx_head_memory_is_bounded_by_the_chunk():
    """The head alone (no transformer body): the peak does not grow with the supervised positions."""
    import mlx.core as mx

    from mlxsft.backends.mlx.loss import _fused_head_nll

    vocab, hidden, peaks = 16384, 32, []
    rng = np.random.default_rng(0)
    matrix = mx.array(rng.standard_normal((vocab, hidden)).astype(np.float32) * 0.1)
    for positions in (512, 2048):
        h = mx.array(rng.standard_normal((positions, hidden)).astype(np.float32))
        t = mx.array(rng.integers(0, vocab, positions).astype(np.int32))
        w = mx.ones((positions,))
        mx.eval(matrix, h, t, w)
        fused = _fused_head_nll(64, False)
        mx.reset_peak_memory()
        before = mx.get_active_memory()
        out, grads = mx.vjp(lambda x: fused(x, matrix, t, w)[0], [h], [mx.array(1.0)])
        mx.eval(out, grads)
        peaks.append(mx.get_peak_memory() - before)
    chunk = 64 * vocab * 4  # one chunk of logits: 4.2 MB; the whole logits at 2048 positions: 134 MB
    assert peaks[1] < 1.25 * peaks[0] + 2048 * hidden * 8, peaks  # 4x the positions, not 4x the memory
    assert peaks[1] < 8 * chunk, (peaks, chunk)  # a few chunk-sized buffers (7 measured), whatever the positions


# --------------------------------------------------------------------------------------------------- torch
@pytest.fixture(scope="module")
def torch_model(tiny_llama_dir):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()


def _torch_grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("trains", ["lora-like", "full"])
def test_torch_chunked_head_matches_whole_logits(torch_model, trains):
    import torch
    import torch.nn.functional as F

    from mlxsft.backends.torch.loss import forward_logits, token_nll

    model = torch_model
    for name, p in model.named_parameters():
        p.requires_grad_(trains == "full" or "embed_tokens" not in name and "lm_head" not in name)
    ids, mask = (torch.from_numpy(a) for a in _batch())
    logits = forward_logits(model, ids[:, :-1]).float()
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
    ref = (nll * mask[:, 1:].reshape(-1).float()).sum()
    ref_g = _torch_grads(model, ref)
    got = token_nll(model, ids, mask.float(), head_chunk=32)[0]
    got_g = _torch_grads(model, got)
    assert float(got) == pytest.approx(float(ref), rel=2e-6)
    assert ref_g.keys() == got_g.keys() and any("embed_tokens" in k for k in got_g) == (trains == "full")
    for k in ref_g:
        assert (got_g[k] - ref_g[k]).abs().max() <= 1e-5 * max(ref_g[k].abs().max(), 1e-6), k
    with torch.no_grad():
        assert float(token_nll(model, ids, mask.float(), head_chunk=32)[0]) == pytest.approx(float(ref), rel=2e-6)


def test_torch_head_never_builds_all_logits(torch_model):
    """Every tensor an op creates in forward + backward, watched through a dispatch mode: none is as large as
    the supervised positions' logits; the largest vocabulary-wide one is one chunk."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from mlxsft.backends.torch.loss import token_nll

    vocab = torch_model.config.vocab_size

    class Widest(TorchDispatchMode):
        rows = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                # contiguous: not the transposed (hidden, vocab) view of the weight that F.linear takes
                if isinstance(t, torch.Tensor) and t.dim() == 2 and t.shape[-1] == vocab and t.is_contiguous():
                    Widest.rows = max(Widest.rows, t.shape[0])
            return out

    for p in torch_model.parameters():
        p.requires_grad_(True)
    ids, mask = (torch.from_numpy(a) for a in _batch())
    supervised = int(mask[:, 1:].sum())
    with Widest():
        token_nll(torch_model, ids, mask.float(), head_chunk=32)[0].backward()
    assert Widest.rows == 32 < supervised
