"""``check_equal_budget``: arms compared at unequal steps or tokens are refused, from the numbers the runs logged."""

from __future__ import annotations

import pytest

from mlxsft.errors import RunError
from mlxsft.experiments.arms import ArmResult, aggregate, check_equal_budget


def _result(arm: str, seed: int, steps: int, tokens: int, right: int = 10) -> ArmResult:
    return ArmResult(arm=arm, seed=seed, run_dir="", steps=steps, trained_tokens=tokens, rows=300, train_loss=1.0,
                     peak_memory_gb=1.0, s_per_step=1.0, trainable_params=100, right=right, right_base=2,
                     questions=48, wins=right - 2, regressions=0, stop_rate=1.0, kl=0.5, tuned_nll=1.0,
                     base_nll=0.5, train_s=10.0, total_s=20.0)


def test_equal_steps_and_tokens_within_the_tolerance_pass():
    budget = check_equal_budget([_result("a", 0, 8, 6000), _result("b", 0, 8, 6200), _result("a", 1, 8, 6100)])
    assert budget == {"steps": 8, "tokens_min": 6000, "tokens_max": 6200, "tolerance": 0.10}


def test_unequal_steps_are_refused():
    with pytest.raises(RunError, match="different numbers of optimizer steps"):
        check_equal_budget([_result("a", 0, 8, 6000), _result("b", 0, 7, 6000)])


def test_unequal_tokens_are_refused():
    with pytest.raises(RunError, match="unequal token counts .6000 to 7000"):
        check_equal_budget([_result("a", 0, 8, 6000), _result("b", 0, 8, 7000)])
    check_equal_budget([_result("a", 0, 8, 6000), _result("b", 0, 8, 7000)], tolerance=0.2)


def test_aggregate_gives_mean_and_sd_over_seeds_per_arm():
    summary = aggregate([_result("a", 0, 8, 1, right=30), _result("a", 1, 8, 1, right=33),
                         _result("b", 0, 8, 1, right=20), _result("a", 2, 8, 1, right=31)], ("right",))
    assert list(summary) == ["a", "b"]
    a = summary["a"]["right"]
    assert a.mean == pytest.approx(31.333333) and a.sd == pytest.approx(1.527525) and a.n == 3
    assert a.text() == "31.3 ± 1.5"
    assert summary["b"]["right"].sd is None and summary["b"]["right"].text() == "20.0"


def test_the_recorded_setup_names_the_backend_that_ran_not_auto(tmp_path):
    from mlxsft.backends.registry import resolve
    from mlxsft.experiments.arms import Setup
    from mlxsft.experiments.curation import _setup_dict

    d = _setup_dict(Setup(out=tmp_path, backend="auto"))
    assert d["backend"] == resolve("auto") and d["backend"] in ("mlx", "torch")
    assert _setup_dict(Setup(out=tmp_path, backend="torch"))["backend"] == "torch" and d["out"] == str(tmp_path)
