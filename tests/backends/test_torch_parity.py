"""MLX and torch agree: the same tiny llama loaded both ways, the same batches, the same LoRA init.

- the loss masks are identical: both backends' tokenizers give the same ``prepare_split`` examples;
- step 0 (fp32): losses agree within 1e-4, unpacked and packed;
- 5 LoRA steps from the same init (MLX's ``lora_a (in, r)``/``lora_b (r, out)`` copied transposed into
  peft's ``lora_A (r, in)``/``lora_B (out, r)``; scale alpha/r in both) with AdamW, clipping and a
  warmup+cosine schedule: the losses stay close and so do the adapter weights. MLX's Adam defaults to no
  bias correction; torch's always corrects, so the MLX side turns it on here;
- end to end: ``run_training`` on MLX and on torch log the same first loss and validation tokens.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")
pytest.importorskip("peft")

from mlxsft.config import load_config  # noqa: E402
from tests.helpers import make_cfg, train_losses  # noqa: E402

STEPS = 5


@pytest.fixture(scope="module")
def both(tiny_llama_dir, data_dir):
    """(mlx model, torch model, train examples, cfg) from the same folder and data."""
    from mlx_lm import load
    from transformers import AutoModelForCausalLM

    from mlxsft.data import prepare_split
    from mlxsft.models import load_tokenizer

    cfg = load_config(None, dict(model=str(tiny_llama_dir), data=str(data_dir), max_seq_len=64, rank=4, alpha=8.0,
                                 learning_rate=5e-3, warmup=2, lr_schedule="cosine", max_grad_norm=1.0))
    mlx_model, mlx_tok = load(str(tiny_llama_dir))
    torch_model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32,
                                                       attn_implementation="sdpa")
    via_mlx = prepare_split(cfg.data, mlx_tok._tokenizer, "train")
    via_torch = prepare_split(cfg.data, load_tokenizer(str(tiny_llama_dir)), "train")
    return mlx_model, torch_model, via_mlx, via_torch, cfg


def test_loss_masks_are_identical(both):
    _, _, via_mlx, via_torch, _ = both
    assert len(via_mlx.examples) == len(via_torch.examples) == 8
    for a, b in zip(via_mlx.examples, via_torch.examples):
        np.testing.assert_array_equal(a.input_ids, b.input_ids)
        np.testing.assert_array_equal(a.loss_mask, b.loss_mask)
    assert via_mlx.chat_template == via_torch.chat_template


def _batches(examples, pack: bool):
    from mlxsft.data.batching import collate, plan_batches

    plan = plan_batches([len(e.input_ids) for e in examples], 4, max_seq_len=128 if pack else 64, pack=pack,
                        seed=0, epoch=0)
    return [collate(examples, b, 2) for b in plan]


def _mlx_loss(model, b, pack):
    from mlxsft.backends.mlx.loss import token_nll

    seg = mx.array(b.segment_ids) if pack else None
    s, n = token_nll(model, mx.array(b.input_ids), mx.array(b.loss_mask), seg)
    return float(s) / float(n)


def _torch_loss(model, b, pack):
    from mlxsft.backends.torch.loss import token_nll

    seg = torch.from_numpy(b.segment_ids.astype(np.int64)) if pack else None
    s, n = token_nll(model, torch.from_numpy(b.input_ids.astype(np.int64)), torch.from_numpy(b.loss_mask), seg)
    return s / n


@pytest.mark.parametrize("pack", [False, True], ids=["padded", "packed"])
def test_step0_losses_agree(both, pack):
    mlx_model, torch_model, examples, _, _ = both
    batches = _batches(examples.examples, pack)
    if pack:
        assert any(int(b.segment_ids.max()) > 1 for b in batches)  # really packed
    with torch.no_grad():
        for b in batches:
            a, t = _mlx_loss(mlx_model, b, pack), float(_torch_loss(torch_model, b, pack))
            assert a > 8.0 and abs(a - t) < 1e-4, (a, t)


def _mlx_to_peft_name(key: str) -> str:
    # model.layers.0.self_attn.q_proj.lora_a -> base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight
    path, leaf = key.rsplit(".", 1)
    return f"base_model.model.{path}.{'lora_A' if leaf == 'lora_a' else 'lora_B'}.default.weight"


def test_five_lora_steps_stay_close(tiny_llama_dir, both):
    import mlx.nn as mnn
    import mlx.optimizers as moptim
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from transformers import AutoModelForCausalLM

    from mlxsft.backends.mlx.adapters import make_trainable as mlx_trainable
    from mlxsft.backends.mlx.loss import token_nll as mlx_nll
    from mlxsft.backends.mlx.optim import build_schedule
    from mlxsft.backends.torch.adapters import make_trainable as torch_trainable
    from mlxsft.backends.torch.loss import token_nll as torch_nll
    from mlxsft.backends.torch.optim import build_optimizer

    _, _, examples, _, cfg = both
    mlx_model, _ = load(str(tiny_llama_dir))  # fresh copies: the fixture's models stay untouched
    torch_model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32, attn_implementation="sdpa")
    mx.random.seed(0)
    mlx_trainable(mlx_model, cfg.lora)
    mlx_model.train()
    peft_model = torch_trainable(torch_model, cfg.lora)
    peft_model.train()
    lora = dict(tree_flatten(mlx_model.trainable_parameters()))
    params = dict(peft_model.named_parameters())
    assert {_mlx_to_peft_name(k) for k in lora} == {k for k, p in params.items() if p.requires_grad}
    with torch.no_grad():
        for k, v in lora.items():
            params[_mlx_to_peft_name(k)].copy_(torch.from_numpy(np.array(v).T))  # (in, r) -> (r, in) etc.
    # B = 0 at init in both, so the first loss ignores A; B moves from step 1 on and A's copy matters

    opt_mlx = moptim.AdamW(learning_rate=build_schedule(cfg.optim, STEPS), weight_decay=0.0, bias_correction=True)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    opt_torch, sched = build_optimizer(cfg.optim, trainable, STEPS)

    def mlx_loss(model, ids, mask):
        s, n = mlx_nll(model, ids, mask)
        return s / n

    grad_fn = mnn.value_and_grad(mlx_model, mlx_loss)
    batches = _batches(examples.examples, pack=False)
    got_mlx, got_torch = [], []
    for step in range(STEPS):
        b = batches[step % len(batches)]
        loss, grads = grad_fn(mlx_model, mx.array(b.input_ids), mx.array(b.loss_mask))
        grads, _ = moptim.clip_grad_norm(grads, cfg.optim.max_grad_norm)
        opt_mlx.update(mlx_model, grads)
        mx.eval(mlx_model.parameters(), opt_mlx.state)
        got_mlx.append(float(loss))

        s, n = torch_nll(peft_model, torch.from_numpy(b.input_ids.astype(np.int64)), torch.from_numpy(b.loss_mask))
        (s / n).backward()
        torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.max_grad_norm)
        opt_torch.step()
        sched.step()
        opt_torch.zero_grad()
        got_torch.append(float((s / n).detach()))

    assert abs(got_mlx[0] - got_torch[0]) < 1e-4
    np.testing.assert_allclose(got_torch, got_mlx, rtol=1e-4, atol=1e-4)
    assert got_mlx[-1] < got_mlx[0]  # it trained
    lora = dict(tree_flatten(mlx_model.trainable_parameters()))
    for k, v in lora.items():
        np.testing.assert_allclose(params[_mlx_to_peft_name(k)].detach().numpy(), np.array(v).T, atol=1e-4)


def test_end_to_end_runs_log_the_same_first_loss(tiny_llama_dir, data_dir, tmp_path):
    from mlxsft.runs import MetricsLog
    from mlxsft.train import run_training

    common = dict(iters=1, eval_every=1, batch_size=4)
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "mlx", trainer="torch", backend="mlx", **common))
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "torch", trainer="torch", **common))
    a, b = train_losses(tmp_path / "mlx"), train_losses(tmp_path / "torch")
    assert abs(a[0] - b[0]) < 1e-4, (a, b)
    val = [[r["val_tokens"] for r in MetricsLog(tmp_path / run / "metrics.jsonl").read() if "val_tokens" in r]
           for run in ("mlx", "torch")]
    assert val[0] == val[1] and val[0][0] > 0
