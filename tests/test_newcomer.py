"""Places where a newcomer found the tool saying the wrong thing: summaries that point nowhere, a Ctrl-C during
the before/after table, checks that came after the model load, words that did not match, a stale .lock."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from mlxsft.config import load_config
from mlxsft.errors import ConfigError, DataError
from mlxsft.runs import RunLock, prepare_run_dir
from tests.helpers import make_cfg, write_data


def _result(**kw):
    base = dict(steps=4, total_steps=4, elapsed_s=1.0, tokens_per_sec=100.0, train_loss=1.5, val_loss=None,
                best_val_loss=None, best_step=None, peak_memory_gb=0.1, interrupted=False, stopped_early=False)
    return SimpleNamespace(**{**base, **kw})


def _finish(tmp_path, capsys, **kw):
    from mlxsft.cli.ui.train import TrainView

    outcome = SimpleNamespace(planned_only=False, run_dir=tmp_path / "run", result=_result(**kw), compare_stopped=False)
    TrainView(load_config(None, {})).finish(outcome)
    return capsys.readouterr().out


def test_without_a_validation_split_the_summary_names_no_best(tmp_path, capsys):
    out = _finish(tmp_path, capsys)
    assert "no validation split (so no best/)" in out and "/best" not in out and "None" not in out
    assert f"tuned weights: {tmp_path / 'run'}" in out
    out = _finish(tmp_path, capsys, val_loss=1.2, best_val_loss=1.1, best_step=3)
    assert "(best 1.1000 at step 3)" in out and f"(best: {tmp_path / 'run'}/best)" in out


def test_an_interrupted_run_says_stopped_not_done(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _finish(tmp_path, capsys, steps=2, interrupted=True)
    out = capsys.readouterr().out
    assert e.value.code == 130 and "stopped at step 2/4" in out and "done:" not in out


def test_ctrl_c_in_the_before_after_table_says_the_run_is_complete(tiny_llama_dir, tmp_path, monkeypatch):
    import mlxsft.train as train_mod
    from mlxsft.cli.main import cli

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "compare_base_and_tuned", interrupted)
    monkeypatch.setenv("MLXSFT_NO_BLAS_REEXEC", "1")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--model", str(tiny_llama_dir), "--data", str(write_data(tmp_path / "d")),
                                      "--out", str(out), "--iters", "2", "--batch-size", "2", "--max-seq-len", "64",
                                      "--backend", "mlx"])
    assert result.exit_code == 130, result.output
    assert "training is complete" in result.output and f"mlxsft eval --adapter {out} --compare" in result.output
    assert "--resume" not in result.output
    assert (out / "adapters.safetensors").is_file() and not (out / ".lock").exists()


def test_eval_compare_alone_asks_the_questions_of_the_runs_own_table(tiny_llama_dir, tmp_path):
    from mlxsft.evaluate import EvalOptions, bundled_questions_path, run_eval
    from mlxsft.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(tiny_llama_dir, write_data(tmp_path / "d"), run, iters=1))
    report = run_eval(EvalOptions(adapter=str(run), compare=True, limit=2, max_tokens=2, forgetting=False))
    # the run trained on its own data: its table asks that data's held-out rows, so eval does too
    assert report.questions_file == f"{tmp_path / 'd'} (valid split)" and len(report.questions.rows) == 2
    bundled = tmp_path / "bundled-run"
    run_training(make_cfg(tiny_llama_dir, write_data(tmp_path / "d"), bundled, iters=1,
                          compare_questions=str(bundled_questions_path())))
    report = run_eval(EvalOptions(adapter=str(bundled), compare=True, limit=2, max_tokens=2, forgetting=False))
    assert report.questions_file == str(bundled_questions_path()) and len(report.questions.rows) == 2
    with pytest.raises(ConfigError, match="give --questions FILE or --data PATH"):
        run_eval(EvalOptions(adapter=str(run)))


def test_a_missing_data_path_is_reported_before_any_model_loads(tmp_path, monkeypatch):
    import mlxsft.backends.registry as registry
    from mlxsft.train import run_training

    monkeypatch.setattr(registry, "get_backend", lambda *a: pytest.fail("loaded a backend before checking --data"))
    cfg = load_config(None, {"data": str(tmp_path / "nope.jsonl"), "out": str(tmp_path / "run")})
    with pytest.raises(DataError, match="nope.jsonl: file or folder not found"):
        run_training(cfg)
    cfg = load_config(None, {"compare_questions": str(tmp_path / "q.jsonl"), "out": str(tmp_path / "run")})
    with pytest.raises(ConfigError, match="compare_questions: .*q.jsonl: file not found"):
        run_training(cfg)
    assert not (tmp_path / "run").exists()


def test_words_that_match(monkeypatch):
    from mlxsft.cli.main import cli

    with pytest.raises(ConfigError) as e:
        load_config(None, {"method": "qlora"})
    assert "--method lora --quantize 4" in str(e.value)
    help_text = CliRunner().invoke(cli, ["train", "--help"]).output
    assert "--rank INTEGER" in help_text and "--learning-rate FLOAT" in help_text
    assert not re.search(r"--[a-z-]+ VALUE\b", help_text)  # every flag shows what it takes
    assert "cli/eval.py" in CliRunner().invoke(cli, ["eval", "--help"]).output
    monkeypatch.setattr("mlxsft.backends.registry.choose_blas", lambda name, argv=None: None)
    doctor = json.loads(CliRunner().invoke(cli, ["doctor", "--json"]).output)
    from mlxsft.doctor import pick_backend

    assert doctor["Backend"]["default"] == f"auto (mlxsft train without --backend): {pick_backend()[0]} here"


def test_a_finished_run_leaves_no_lock_file(tmp_path):
    out = prepare_run_dir(tmp_path / "run", resume=False)
    with RunLock(out):
        assert (out / ".lock").is_file()
        with pytest.raises(Exception, match="another training"):
            RunLock(out).__enter__()
    assert not (out / ".lock").exists()
    with RunLock(out):  # and the next training takes it again
        assert (out / ".lock").is_file()


def test_one_bad_row_blocks_neither_stats_nor_inspect(smol_tokenizer_dir, tiny_llama_dir, tmp_path):
    from tests.helpers import run_cli

    good = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(good) + "\n" + "{not json\n" + json.dumps(good) + "\n")
    r = run_cli("data", "stats", str(data), "--model", str(smol_tokenizer_dir))
    assert r.returncode == 0, r.stderr
    assert "2 used of 2" in r.stdout and "1 malformed row left out" in r.stdout
    r = run_cli("data", "inspect", str(data), "--model", str(smol_tokenizer_dir), "--row", "2")
    assert r.returncode == 0, r.stderr
    assert "Hello." in r.stdout
    r = run_cli("data", "inspect", str(data), "--model", str(smol_tokenizer_dir), "--row", "1")
    assert r.returncode == 1 and "d.jsonl:2" in r.stderr and "Traceback" not in r.stderr  # the bad row itself
    r = run_cli("train", "--data", str(data), "--model", str(tiny_llama_dir), "--plan")
    assert r.returncode == 1 and "d.jsonl:2" in r.stderr  # training still refuses a malformed file
