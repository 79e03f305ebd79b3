"""The SFT bench's pieces that need no training: its data, its FLOP count, its options and ratios."""

from __future__ import annotations

import json

import pytest

from bench.bench_sft import parse_options, ratios
from bench.flops import ModelShape, training_flops
from bench.sft_data import write_dataset
from mlxsft.data.bundled_paths import bundled_path


def test_data_is_deterministic_and_spread(tmp_path, smol_tokenizer):
    a = write_dataset(tmp_path / "a", 96, 16)
    b = write_dataset(tmp_path / "b", 96, 16)
    assert (a / "train.jsonl").read_bytes() == (b / "train.jsonl").read_bytes()
    rows = [json.loads(line) for line in (a / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 96 and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    lengths = sorted(len(smol_tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=False))
                     for r in rows)
    assert lengths[0] < 80 and lengths[-1] > 500  # a real spread, not uniform short rows
    assert 120 < lengths[len(lengths) // 2] < 300


def test_validation_rows_come_from_the_bundled_valid_split_only(tmp_path):
    out = write_dataset(tmp_path, 8, 16)
    valid_text = bundled_path("valid").read_text()
    train_text = bundled_path("train").read_text()
    for line in (out / "valid.jsonl").read_text().splitlines():
        answer = json.loads(line)["messages"][-1]["content"].split("\n")[-1]
        answer = answer.split(". ", 1)[1] if answer[:1].isdigit() and ". " in answer else answer
        assert json.dumps(answer)[1:-1] in valid_text
        assert json.dumps(answer)[1:-1] not in train_text or len(answer) < 12  # short answers ("Monday") recur


def test_flops_count_lora_as_4n_and_full_as_6n_per_token():
    shape = ModelShape(hidden=8, intermediate=16, layers=2, heads=2, kv_heads=1, head_dim=4, vocab=10)
    n_lin = 8 * 8 + 8 * 4 * 2 + 8 * 8 + 8 * 16 * 3  # q, k, v, o, gate, up, down
    assert shape.linear_params() == n_lin
    rows = [(5, 2), (3, 1)]  # 4 + 2 input positions, 3 supervised targets
    full = training_flops(shape, rows, method="full")
    lora = training_flops(shape, rows, method="lora", rank=2)
    assert full["linear_forward"] + full["linear_backward"] == 6 * n_lin * 2 * 6
    assert lora["linear_forward"] + lora["linear_backward"] == 4 * n_lin * 2 * 6
    assert lora["lora"] == 6 * 2 * (8 + 8 + 8 + 4 + 8 + 4 + 8 + 8 + 8 + 16 + 8 + 16 + 16 + 8) * 2 * 6
    assert full["head"] == lora["head"] == 4 * 8 * 10 * 3
    # causal attention: 2 matmuls x 2 FLOPs x heads x head_dim x n(n-1)/2 per row, forward + 2x backward per layer
    assert full["attention"] == 2 * 2 * 4 * (5 * 4 + 3 * 2) * (2 + 2 * 2)
    assert full["total"] == pytest.approx(sum(full[k] for k in ("linear_forward", "linear_backward", "attention",
                                                                "lora", "head")))


def test_options_go_to_the_named_contender_or_both_mlxsft_ones():
    names = ["mlxsft-mlx", "mlxsft-torch", "mlx-lm", "trl"]
    opts = parse_options(["compile=false", "mlx-lm:grad_checkpoint=true", "trl:max_grad_norm=0.5"], names)
    assert opts == {"mlxsft-mlx": {"compile": False}, "mlxsft-torch": {"compile": False},
                    "mlx-lm": {"grad_checkpoint": True}, "trl": {"max_grad_norm": 0.5}}


def test_ratios_compare_each_mlxsft_backend_with_its_peer():
    r = {"wall_s": 100.0, "train_s": 80.0, "cpu_s": 150.0, "val_loss": 2.0, "peak_rss_gb": 2.0}
    results = {"mlxsft-mlx": {**r, "wall_s": 40.0, "val_loss": 2.02}, "mlx-lm": r,
               "mlxsft-torch": {"failed": True}, "trl": r}
    (q,) = ratios(results)
    assert (q["ours"], q["peer"]) == ("mlxsft-mlx", "mlx-lm")
    assert q["wall"] == pytest.approx(0.4) and q["val_loss_delta_pct"] == pytest.approx(1.0)


def test_a_peer_runs_its_batch_whole_or_in_accumulated_passes():
    from bench.peers.common import Job, peer_passes

    job = Job(model="m", train_dir="t", valid_dir="v", out="o", batch_size=8, options={"lr_scheduler_kwargs": {}})
    assert peer_passes(job) == ({"lr_scheduler_kwargs": {}}, 8, 1)
    job.options = {"micro_batch_size": 2, "x": 1}
    assert peer_passes(job) == ({"x": 1}, 2, 4)
    assert job.options == {"micro_batch_size": 2, "x": 1}  # the job itself is left as it was
