"""An experiment resumes per arm: an arm whose result file carries the key of its config, data and questions is
read back without training; any change to those trains it again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxsft.experiments import arms
from mlxsft.experiments.arms import Arm, Setup, arm_config, arm_key, prepare_questions, result_path, run_arm
from tests.experiments.test_budget import _result


class Trained(Exception):
    pass


def _refuse_training(*args, **kwargs):
    raise Trained


@pytest.fixture
def setup(tmp_path, monkeypatch) -> Setup:
    import mlxsft.train

    monkeypatch.setattr(mlxsft.train, "run_training", _refuse_training)
    s = Setup(out=tmp_path / "exp", model="some-model", backend="torch", steps=3, n_questions=5, n_general=2)
    prepare_questions(s)
    return s


def _saved(setup: Setup, arm: Arm, seed: int) -> dict:
    cfg = arm_config(setup, arm, seed, setup.out / "arms" / f"{arm.name}-seed{seed}")
    result = _result(arm.name, seed, 3, 900).to_dict() | {"key": arm_key(cfg, arm.data, setup)}
    path = result_path(setup, arm, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


def test_an_arm_measured_before_is_read_back(setup, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    arm = Arm("curated", data)
    saved = _saved(setup, arm, seed=0)
    result, cached = run_arm(setup, arm, 0)
    assert cached and result.to_dict() == saved
    assert len(Path(setup.questions_path).read_text().splitlines()) == 5


@pytest.mark.parametrize("change", ["data", "seed", "steps", "questions"])
def test_a_changed_arm_is_trained_again(setup, tmp_path, change):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    arm = Arm("curated", data)
    _saved(setup, arm, seed=0)
    seed = 0
    if change == "data":
        data.write_text(data.read_text() * 2)
    elif change == "seed":
        seed = 1
        result_path(setup, arm, 0).rename(result_path(setup, arm, 1))
    elif change == "steps":
        setup.steps = 4
    else:
        setup.n_questions = 4
        prepare_questions(setup)
    with pytest.raises(Trained):
        run_arm(setup, arm, seed)
    assert arms.result_path(setup, arm, seed).is_file()  # the old numbers stay until new ones replace them
