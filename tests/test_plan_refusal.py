"""``mlxsft train`` refuses a run its memory plan says will not fit, and says what would: with
``--grad-checkpoint`` off, the plan that flag would give (at long rows it is the lever that fits: Gemma-3-270M at
8192 tokens on MLX plans 27.7 GB without it, 6.2 GB with it)."""

from __future__ import annotations

import pytest

from mlxsft.errors import RunError
from mlxsft.train import run_training
from tests.helpers import make_cfg, write_data


def _plan_gb(tiny_llama_dir, data, out, **over) -> float:
    return run_training(make_cfg(tiny_llama_dir, data, out, **over), plan_only=True).plan.total_gb


def test_a_plan_over_the_machine_names_the_grad_checkpoint_plan(tiny_llama_dir, tmp_path, monkeypatch):
    import mlxsft.machine

    data = write_data(tmp_path / "data")
    over = dict(batch_size=8, micro_batch_tokens=0)
    whole = _plan_gb(tiny_llama_dir, data, tmp_path / "p1", **over)
    lean = _plan_gb(tiny_llama_dir, data, tmp_path / "p2", grad_checkpoint=True, **over)
    assert lean < whole
    monkeypatch.setattr(mlxsft.machine, "total_memory_bytes", lambda: int((whole + lean) / 2 * 1e9))

    out = tmp_path / "run"
    with pytest.raises(RunError) as err:
        run_training(make_cfg(tiny_llama_dir, data, out, **over))
    assert f"estimated peak memory {whole:.1f} GB exceeds" in str(err.value)
    assert f"with --grad-checkpoint the plan is {lean:.1f} GB" in err.value.hint
    assert not (out / "checkpoints").exists()

    # already on: the hint does not offer it again (and the leaner plan fits, so training would go on)
    monkeypatch.setattr(mlxsft.machine, "total_memory_bytes", lambda: int(lean / 2 * 1e9))
    with pytest.raises(RunError) as err:
        run_training(make_cfg(tiny_llama_dir, data, out, grad_checkpoint=True, **over))
    assert "--grad-checkpoint" not in err.value.hint
    assert "lower --batch-size or --max-seq-len" in err.value.hint
