"""Two torch processes on the CPU (``torchrun --standalone``, gloo) train the weights one process does, with DDP
(LoRA) and FSDP (full fine-tuning), and checkpoints move between 1 and 2 processes in both directions.

The DDP run packs the 7 rows into 3 sequences and accumulates 2 micro-batches per step (one epoch): 2
sequences, one per rank, then 1 sequence, which leaves rank 1 only an empty row; DDP syncs on the second.
It uses SGD, whose update *is* the gradient (Adam would hide a gradient off by a constant factor, see
test_mlx_distributed.py); the FSDP run uses AdamW, whose moments are what FSDP shards, and checks the
gradient through the logged grad norm.

Each torchrun costs two process start-ups (~30 s on a loaded 2-core box), so there are two, each checking
several things: DDP from a fresh start, then resumed on one process; FSDP from a one-process checkpoint,
then back on one. (MLX covers one-to-two for a replicated model; that path is ``mlxsft/train.py``'s, shared.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from mlxsft.config import load_config  # noqa: E402
from mlxsft.runs import MetricsLog  # noqa: E402
from mlxsft.train import resolve_resume, run_training  # noqa: E402
from tests.helpers import ROWS, write_data  # noqa: E402
from tests.distributed.launch import assert_ok, cli_flags, copies_per_rank, snapshot, torchrun  # noqa: E402

CKPT = "checkpoints/step-{:08d}/trainable.safetensors"


def ddp_options(model: Path, data: Path, iters: int) -> dict:
    return dict(backend="torch", model=str(model), data=str(data), compare=False, iters=iters, batch_size=2,
                grad_accum=2, pack=True, max_seq_len=128, optimizer="sgd", learning_rate=0.2, warmup=0,
                lr_schedule="constant", eval_every=0, save_every=1, report_every=1, seed=0)


def fsdp_options(model: Path, data: Path, iters: int) -> dict:
    return dict(backend="torch", model=str(model), data=str(data), compare=False, iters=iters, batch_size=4,
                method="full", num_layers=-1, learning_rate=1e-3, warmup=0, lr_schedule="constant",
                eval_every=0, save_every=1, report_every=1, max_seq_len=64, seed=0)


def weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def assert_same_weights(a: Path, b: Path, atol: float = 1e-6) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-4, atol=atol, err_msg=k)


def train_records(run: Path) -> dict[int, dict]:
    return {r["step"]: r for r in MetricsLog(run / "metrics.jsonl").read() if r.get("train_loss") is not None}


def assert_same_steps(run: Path, reference: Path, steps: list[int]) -> None:
    got, want = train_records(run), train_records(reference)
    assert sorted(got) == steps  # each step logged once, by rank 0
    for s in steps:
        assert got[s]["train_loss"] == pytest.approx(want[s]["train_loss"], rel=1e-5)
        assert got[s]["grad_norm"] == pytest.approx(want[s]["grad_norm"], rel=1e-4)  # the summed gradient


def train(opts: dict, out: Path):
    return run_training(load_config(None, dict(opts, out=str(out))))


def resume(run: Path, iters: int):
    cfg, _ = resolve_resume(str(run), {"iters": iters}, None)
    return run_training(cfg, resume=True)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"), rows=ROWS[:7])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_llama_dir, data_dir) -> Path:
    """One process, 2 steps of LoRA; checkpoints at steps 1 and 2."""
    run = tmp_path_factory.mktemp("one") / "run"
    train(ddp_options(tiny_llama_dir, data_dir, 2), run)
    return run


def test_ddp_two_processes_train_what_one_does_and_the_checkpoint_resumes_on_one(tiny_llama_dir, data_dir,
                                                                                 reference, tmp_path):
    r = torchrun(["train", *cli_flags(ddp_options(tiny_llama_dir, data_dir, 1))],
                 per_rank=("--out", tmp_path / "run-"))
    assert_ok(r)
    run = tmp_path / "run-0"
    assert not (tmp_path / "run-1").exists()  # rank 1 never creates its run folder
    assert {"config.yaml", "metrics.jsonl", "loss.png", "adapter_model.safetensors", "run_info.json"} <= {
        p.name for p in run.iterdir()}
    assert_same_weights(run / CKPT.format(1), reference / CKPT.format(1))
    assert_same_steps(run, reference, [1])
    assert r.stdout.count("step 1/1") == 1  # rank 0 alone reports
    assert "2 processes: each takes 1 of the 2 rows of every micro-batch" in r.stdout

    assert resume(run, 2).result.steps == 2
    assert_same_weights(run / "adapter_model.safetensors", reference / "adapter_model.safetensors")
    assert_same_steps(run, reference, [1, 2])


def test_fsdp_full_fine_tuning_moves_from_one_process_to_two_and_back(tiny_llama_dir, data_dir, tmp_path):
    """Step 1 on one process, step 2 sharded over two (each rank resumes its own copy; rank 1 takes part in
    every gather but writes nothing), step 3 on one again: the reference's weights at every checkpoint."""
    opts = fsdp_options(tiny_llama_dir, data_dir, 3)
    train(opts, tmp_path / "one")  # the reference: one process, checkpoints kept at steps 2 and 3
    train(dict(opts, iters=1), tmp_path / "first")
    untouched = copies_per_rank(tmp_path / "first", tmp_path / "run-")
    r = torchrun(["train", "--iters", "2", "--fsdp", "--compare"], per_rank=("--resume", tmp_path / "run-"))
    assert_ok(r)
    assert snapshot(tmp_path / "run-1") == untouched
    run = tmp_path / "run-0"
    assert (run / "checkpoints/latest").read_text().strip() == "step-00000002"
    # generating on rank 0 alone would hang on the other shards: the table is skipped, with the command for it
    assert "before/after table skipped" in r.stdout and not (run / "compare.json").exists()
    # Adam's update normalises rounding differences of tiny gradients up to ~1e-5 (measured 6e-6)
    assert_same_weights(run / CKPT.format(2), tmp_path / "one" / CKPT.format(2), atol=5e-5)

    assert resume(run, 3).result.steps == 3  # and back on one process
    assert_same_weights(run / "trainable.safetensors", tmp_path / "one" / "trainable.safetensors", atol=5e-5)
    assert_same_steps(run, tmp_path / "one", [1, 2, 3])


def test_fsdp_is_refused_where_it_cannot_shard():
    from mlxsft.backends.torch.distributed import TorchWorld, check_fsdp
    from mlxsft.errors import ConfigError

    with pytest.raises(ConfigError, match="fsdp: shards full fine-tuning, not lora"):
        check_fsdp(load_config(None, dict(backend="torch", fsdp=True)))
    with pytest.raises(ConfigError, match="fsdp: optimizer muon is not supported"):
        check_fsdp(load_config(None, dict(backend="torch", fsdp=True, method="full", optimizer="muon")))
    check_fsdp(load_config(None, dict(backend="torch", fsdp=True, method="full")))
    world = TorchWorld(fsdp=True)  # one process: nothing to shard, every hook is the identity
    assert not world.sharded and world.wrap("model") == "model" and world.full_state({"w": 1}) == {"w": 1}
