"""A NaN/inf loss or gradient never reaches the weights: the run stops naming the step and the likely causes,
keeping the last good checkpoint, or skips up to ``--skip-nonfinite N`` such steps. Both backends."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mlxsft.backends.loop import NonFiniteGuard, TrainState
from mlxsft.config import load_config
from mlxsft.errors import RunError
from mlxsft.runs import MetricsLog, latest_checkpoint
from mlxsft.train import run_training
from tests.helpers import make_cfg, write_data
from tests.reliability.killloop import load_adapters


def test_the_guard_skips_up_to_n_bad_steps_then_stops(tmp_path):
    events = []
    guard = NonFiniteGuard(1, tmp_path, lambda e, p: events.append((e, p)))
    st = TrainState(step=6)
    assert guard.allows(st, 2.5, 1.0)
    assert not guard.allows(st, float("nan"), 1.0)
    assert events == [("message", {"text": "step 7: loss is nan, not finite: update skipped "
                                           "(1 of 1 allowed by --skip-nonfinite)"})]
    st.step = 9
    with pytest.raises(RunError) as e:
        guard.allows(st, 2.0, float("inf"))
    msg = str(e.value)
    assert msg.startswith("step 10: gradient norm is inf (loss 2.0000), not finite; stopped after 2 such steps "
                          "(--skip-nonfinite 1)")
    assert "learning rate too high" in msg and "float16" in msg and "bad data row" in msg
    assert "no checkpoint was written before this step" in msg
    assert st.nonfinite_steps == 2


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"))


def poison_mlx(monkeypatch, bad_steps: set[int], loss_too: bool) -> None:
    """Make the gradients (and the loss) of the given steps NaN, as an fp16 overflow or a bad row would."""
    import mlx.core as mx
    from mlx.utils import tree_map

    from mlxsft.backends.mlx.trainer import MLXTrainer

    build = MLXTrainer._build_step

    def poisoned(self):
        run, calls = build(self), [0]

        def step(batch, inv_n):
            calls[0] += 1
            nll, grads = run(batch, inv_n)
            if calls[0] in bad_steps:
                grads = tree_map(lambda g: g * mx.array(float("nan"), dtype=g.dtype), grads)
                nll = nll * float("nan") if loss_too else nll
            return nll, grads

        return step

    monkeypatch.setattr(MLXTrainer, "_build_step", poisoned)


def _finite(folder: Path, name: str) -> dict[str, np.ndarray]:
    w = load_adapters(folder / name)
    assert all(np.isfinite(v).all() for v in w.values()), folder
    return w


def _metrics_are_finite(run: Path) -> None:
    for row in MetricsLog(run / "metrics.jsonl").read():
        for k in ("train_loss", "grad_norm"):
            assert row.get(k) is None or math.isfinite(row[k]), row


def test_mlx_stops_at_a_nan_gradient_and_keeps_the_last_good_checkpoint(tiny_llama_dir, data_dir, tmp_path,
                                                                      monkeypatch):
    cfg = make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=6, save_every=1, compile=False)
    poison_mlx(monkeypatch, {3}, loss_too=False)
    with pytest.raises(RunError) as e:
        run_training(cfg)
    msg = str(e.value)
    assert msg.startswith("step 3: gradient norm is nan (loss ") and "(--skip-nonfinite 0)" in msg
    assert f"the last checkpoint ({tmp_path / 'run' / 'checkpoints' / 'step-00000002'}) is intact" in msg
    assert latest_checkpoint(tmp_path / "run").name == "step-00000002"
    _finite(latest_checkpoint(tmp_path / "run"), "adapters.safetensors")
    _metrics_are_finite(tmp_path / "run")

    monkeypatch.undo()  # the data is fine again: --resume finishes the run
    cfg = load_config(tmp_path / "run" / "config.yaml", {"skip_nonfinite": 2})
    out = run_training(cfg, resume=True)
    assert out.result.steps == 6
    _finite(tmp_path / "run", "adapters.safetensors")


@pytest.mark.parametrize("bad, iters, stops_at", [({3}, 3, None), ({2, 4}, 5, 4)], ids=["one-skipped", "two-stop"])
def test_mlx_skip_nonfinite_skips_n_bad_updates(tiny_llama_dir, data_dir, tmp_path, monkeypatch, bad, iters, stops_at):
    events = []
    cfg = make_cfg(tiny_llama_dir, data_dir, tmp_path / "run", iters=iters, save_every=1, compile=False,
                   skip_nonfinite=1)
    poison_mlx(monkeypatch, bad, loss_too=True)
    run = tmp_path / "run"
    if stops_at:
        with pytest.raises(RunError, match=f"step {stops_at}: loss is nan, not finite; stopped after 2 such steps"):
            run_training(cfg, callback=lambda e, p: events.append((e, p)))
        assert latest_checkpoint(run).name == f"step-{stops_at - 1:08d}"
    else:
        run_training(cfg, callback=lambda e, p: events.append((e, p)))
        # the skipped step 3 saved the weights of step 2: no update was applied
        w2, w3 = (_finite(run / "checkpoints" / f"step-0000000{s}", "adapters.safetensors") for s in (2, 3))
        assert all(np.array_equal(w2[k], w3[k]) for k in w2)
        assert json.loads((run / "checkpoints" / "step-00000003" / "state.json").read_text())["nonfinite_steps"] == 1
    first = min(bad)
    assert ("message", {"text": f"step {first}: loss is nan, not finite: update skipped "
                                "(1 of 1 allowed by --skip-nonfinite)"}) in events
    _metrics_are_finite(run)


def test_skip_nonfinite_is_a_flag_and_not_part_of_the_job_hash():
    a, b = load_config(None, {"skip_nonfinite": 3}), load_config(None, {})
    assert a.train.skip_nonfinite == 3 and b.train.skip_nonfinite == 0
    assert a.hash() == b.hash()  # a resume may raise it
    with pytest.raises(Exception, match="skip_nonfinite: must be >= 0"):
        load_config(None, {"skip_nonfinite": -1})


def test_torch_stops_at_a_nan_gradient_or_skips_it(tiny_llama_dir, data_dir, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from mlxsft.backends.torch.trainer import TorchTrainer

    micro, calls = TorchTrainer._micro_step, [0]

    def poisoned(self, batch, inv_n):
        calls[0] += 1
        nll = micro(self, batch, inv_n)
        if calls[0] == 3:
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.fill_(float("nan"))
        return nll

    monkeypatch.setattr(TorchTrainer, "_micro_step", poisoned)
    common = dict(iters=3, save_every=1, backend="torch", device="cpu")
    with pytest.raises(RunError, match="step 3: gradient norm is nan .*--skip-nonfinite 0"):
        run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "stop", **common))
    assert latest_checkpoint(tmp_path / "stop").name == "step-00000002"
    _finite(latest_checkpoint(tmp_path / "stop"), "trainable.safetensors")

    calls[0] = 0
    run_training(make_cfg(tiny_llama_dir, data_dir, tmp_path / "skip", skip_nonfinite=1, **common))
    ck = tmp_path / "skip" / "checkpoints"
    w2, w3 = (_finite(ck / f"step-0000000{s}", "trainable.safetensors") for s in (2, 3))
    assert all(np.array_equal(w2[k], w3[k]) for k in w2)
    _metrics_are_finite(tmp_path / "skip")
    del torch
