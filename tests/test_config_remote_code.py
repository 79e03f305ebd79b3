"""``trust_remote_code`` comes from the command line only: no YAML file, shared or saved by a run, turns it on.

    pytest -q tests/test_config_remote_code.py
"""

from __future__ import annotations

import warnings

import pytest

from mlxsft.config import Config, RemoteCodeFromFile, load_config
from tests.helpers import run_cli, write_data
from tests.test_train_cli import tiny_args


@pytest.mark.parametrize("text", ["trust_remote_code: true\n", "model:\n  trust_remote_code: yes\n"])
def test_a_file_asking_for_hub_code_is_ignored_with_a_warning(tmp_path, text):
    path = tmp_path / "shared.yaml"
    path.write_text(text)
    with pytest.warns(RemoteCodeFromFile, match=f"^{path}: trust_remote_code: true is ignored") as caught:
        cfg = load_config(path, {})
    assert cfg.model.trust_remote_code is False
    assert len(caught) == 1 and "\n" not in str(caught[0].message)


@pytest.mark.parametrize("flag", [True, False])
def test_the_command_line_decides_whatever_the_file_says(tmp_path, flag):
    path = tmp_path / "shared.yaml"
    path.write_text("trust_remote_code: true\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RemoteCodeFromFile)
        assert load_config(path, {"trust_remote_code": flag}).model.trust_remote_code is flag
        path.write_text("trust_remote_code: false\n")
        assert load_config(path).model.trust_remote_code is False


def test_a_saved_config_records_the_flag_but_loading_it_does_not_trust_it(tmp_path):
    cfg = Config()
    cfg.model.trust_remote_code = True
    cfg.save(tmp_path / "config.yaml")
    assert "trust_remote_code: true" in (tmp_path / "config.yaml").read_text()
    with pytest.warns(RemoteCodeFromFile):
        assert load_config(tmp_path / "config.yaml").model.trust_remote_code is False


def _one_error_line(r) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_train_refuses_hub_code_from_a_config_file(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text("model:\n  trust_remote_code: true\n")
    line = _one_error_line(run_cli("train", "--config", str(path), "--model", str(tmp_path / "no-model"),
                                  "--out", str(tmp_path / "run")))
    assert f"{path}: trust_remote_code: true is not taken from a file" in line and "--trust-remote-code" in line
    assert not (tmp_path / "run").exists()


def test_resuming_a_run_started_with_hub_code_needs_the_flag_again(tiny_llama_dir, tmp_path):
    data = write_data(tmp_path / "data")
    out = tmp_path / "run"
    first = run_cli(*tiny_args(tiny_llama_dir, data, out, "--iters", "2", "--save-every", "1", "--trust-remote-code"))
    assert first.returncode == 0, first.stderr
    assert "trust_remote_code: true" in (out / "config.yaml").read_text()  # the run records what it ran with
    line = _one_error_line(run_cli("train", "--resume", str(out), "--iters", "3"))
    assert f"{out / 'config.yaml'}: trust_remote_code: true is not taken from a file" in line
    assert "again when resuming" in line
    again = run_cli("train", "--resume", str(out), "--iters", "3", "--trust-remote-code")
    assert again.returncode == 0, again.stderr
    assert "resuming at step 2" in again.stdout
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000003"
