"""The OpenBLAS re-exec follows the backend the resolved config asks for: a --config file, a flag, a resumed
run's config.yaml, a run folder's backend; MLX gets OpenBLAS, torch keeps its own BLAS."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlxsft.config import load_config
from mlxsft.errors import MlxsftError


@pytest.fixture
def reexecs(monkeypatch):
    import mlxsft.evaluate
    import mlxsft.export
    import mlxsft.machine
    import mlxsft.train
    from mlxsft.train import TrainOutcome

    calls: list[str] = []
    monkeypatch.setattr(mlxsft.machine, "ensure_fast_blas", lambda argv=None: calls.append("openblas"))
    monkeypatch.setattr(mlxsft.train, "run_training",
                        lambda cfg, **kw: calls.append(f"train:{cfg.train.backend}") or TrainOutcome(
                            run_dir=cfg.train.out, planned_only=True))

    def stop(*a, **kw):
        raise MlxsftError("stopped by the test")

    monkeypatch.setattr(mlxsft.evaluate, "run_eval", stop)
    monkeypatch.setattr(mlxsft.export, "export_run", stop)
    return calls


def _cli(args: list[str]):
    from mlxsft.cli.main import cli

    return CliRunner().invoke(cli, args)


def _said(result) -> str:
    """What a command printed, or the one-line error it stopped with."""
    return result.output + (str(result.exception) if isinstance(result.exception, MlxsftError) else "")


def _run(folder, backend: str):
    folder.mkdir(parents=True)
    load_config(None, {"backend": backend}).save(folder / "config.yaml")
    if backend == "torch":
        (folder / "run_info.json").write_text(json.dumps({"backend": "torch"}))
    return folder


def test_train_takes_the_backend_from_a_config_file(reexecs, tmp_path):
    (tmp_path / "c.yaml").write_text("backend: torch\n")
    assert _cli(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")]).exit_code == 0
    assert reexecs == ["train:torch"]  # no OpenBLAS for torch (measured 3.9x slower with it)
    (tmp_path / "m.yaml").write_text("backend: mlx\n")
    reexecs.clear()
    assert _cli(["train", "--config", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "r")]).exit_code == 0
    assert reexecs == ["openblas", "train:mlx"]


def test_train_takes_the_backend_from_a_flag_and_from_the_default(reexecs, tmp_path):
    assert _cli(["train", "--backend", "torch", "--out", str(tmp_path / "r")]).exit_code == 0
    assert reexecs == ["train:torch"]
    reexecs.clear()
    assert _cli(["train", "--out", str(tmp_path / "r")]).exit_code == 0  # the default: auto, as this machine picks
    from mlxsft.doctor import pick_backend

    assert reexecs == (["openblas"] if pick_backend()[0] == "mlx" else []) + ["train:auto"]


def test_train_resume_takes_the_backend_of_the_run(reexecs, tmp_path):
    assert _cli(["train", "--resume", str(_run(tmp_path / "t", "torch"))]).exit_code == 0
    assert reexecs == ["train:torch"]
    reexecs.clear()
    assert _cli(["train", "--resume", str(_run(tmp_path / "m", "mlx"))]).exit_code == 0
    assert reexecs == ["openblas", "train:mlx"]


@pytest.mark.parametrize("command", [["eval", "--questions", "q.jsonl"], ["export", "--format", "hf", "--out", "x"]])
def test_eval_and_export_take_the_backend_of_the_run_folder(reexecs, tmp_path, command):
    torch_run, mlx_run = _run(tmp_path / "t", "torch"), _run(tmp_path / "m", "mlx")
    flag = "--adapter" if command[0] == "eval" else "--run"
    assert "stopped by the test" in _said(_cli([*command, flag, str(torch_run)]))
    assert reexecs == []
    assert "stopped by the test" in _said(_cli([*command, flag, str(mlx_run)]))
    assert reexecs == ["openblas"]
    if command[0] == "eval":  # an explicit --backend wins over the run's
        reexecs.clear()
        _cli([*command, flag, str(mlx_run), "--backend", "torch"])
        assert reexecs == []


def test_data_checks_never_re_execute(reexecs, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "a"}]}) + "\n")
    assert _cli(["data", "validate", str(data)]).exit_code == 0
    assert reexecs == []
