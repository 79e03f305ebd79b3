"""Torch loss: logits only at supervised positions give the same loss and gradients as full logits.

``token_nll`` runs the vocabulary head on the supervised positions alone when the model splits into a body
and a head that reproduce its logits; a model that changes its logits after the head must fall back.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from mlxsft.backends.torch.loss import split_head, token_nll  # noqa: E402


def _load(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")


def _lora(model):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                  task_type="CAUSAL_LM"))
    for name, p in peft_model.named_parameters():  # non-zero B, so the adapters change the outputs
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return peft_model


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    lengths = (20, 13, 7)
    ids = np.zeros((3, 20), np.int64)
    mask = np.zeros((3, 20), np.float32)
    for r, n in enumerate(lengths):
        ids[r, :n] = rng.integers(10, 1000, n)
        mask[r, rng.integers(1, n, max(1, n // 3))] = 1.0  # scattered supervised targets
    return torch.tensor(ids), torch.tensor(mask)


def _full(model, ids, mask):
    model.__dict__["_mlxsft_split"] = False  # force the full-logits path
    try:
        return token_nll(model, ids, mask)
    finally:
        del model.__dict__["_mlxsft_split"]


def test_selective_logits_match_full_logits_and_gradients(tiny_llama_dir):
    model = _lora(_load(tiny_llama_dir))
    assert split_head(model) is not None
    ids, mask = _batch()
    s_sel, n_sel = token_nll(model, ids, mask)
    s_sel.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    s_full, n_full = _full(model, ids, mask)
    s_full.backward()
    assert float(n_sel) == float(n_full) == float(mask[:, 1:].sum()) > 0
    assert float(s_sel.detach()) == pytest.approx(float(s_full.detach()), rel=1e-5)
    assert len(grads) > 0
    for k, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(grads[k], p.grad, rtol=1e-4, atol=1e-6)


def test_no_supervised_position_gives_zero(tiny_llama_dir):
    model = _load(tiny_llama_dir)
    ids, _ = _batch()
    s, n = token_nll(model, ids, torch.zeros(ids.shape))
    assert float(s) == 0.0 and float(n) == 0.0


def test_a_model_that_changes_its_logits_falls_back(tiny_llama_dir):
    model = _load(tiny_llama_dir)
    plain = model.forward

    def scaled(**kw):
        out = plain(**kw)
        out.logits = out.logits * 0.5  # like a logit scale or soft-capping after the head
        return out

    model.forward = scaled
    assert split_head(model) is None
    ids, mask = _batch(1)
    s, _ = token_nll(model, ids, mask)
    model.forward = plain
    del model.__dict__["_mlxsft_split"]
    unscaled, _ = token_nll(model, ids, mask)
    assert float(s) != pytest.approx(float(unscaled), rel=1e-3)  # the scaled logits were used
