"""Training writes report.html (at its end, after the before/after table, and when stopped by Ctrl-C) and the
facts it shows (setup.json, data_summary.json); a report that fails costs one line, never the run."""

from __future__ import annotations

import json
import os
import signal

import pytest

from mlxsft.train import run_training
from tests.helpers import make_cfg

pytest.importorskip("mlx.core")


def _messages(events):
    return [p["text"] for e, p in events if e == "message"]


def test_a_finished_run_has_its_page_and_facts(tiny_llama_dir, data_dir, tmp_path):
    run = tmp_path / "run"
    events = []
    outcome = run_training(make_cfg(tiny_llama_dir, data_dir, run, iters=2, eval_every=2, compare=True,
                                    compare_limit=3, compare_max_tokens=4, forgetting=False),
                           callback=lambda e, p: events.append((e, p)))
    html = (run / "report.html").read_text()
    assert (run / "compare.json").stat().st_mtime <= (run / "report.html").stat().st_mtime  # refreshed after it
    assert 'id="questions-r0"' in html and html.count('data-outcome="') == 3
    setup = json.loads((run / "setup.json").read_text())
    assert setup["backend"] == "mlx" and setup["memory_plan"]["total_gb"] == pytest.approx(outcome.plan.total_gb)
    assert setup["versions"]["mlxsft"] and setup["device"].startswith("cpu")
    data = json.loads((run / "data_summary.json").read_text())
    train = data["train"]
    assert train["rows"] == 8 and data["valid"]["rows"] == 4 and len(train["samples"]) == 3
    first = train["samples"][0]  # the first row's tokens, and its mask on the assistant's answer alone
    text = "".join(first["pieces"])
    supervised = "".join(p for p, m in zip(first["pieces"], first["mask"]) if m)
    assert "What is the capital of France?" in text and supervised.startswith("Paris.")
    assert "France" not in supervised and len(first["pieces"]) == len(first["mask"])
    assert "no data_summary.json" not in html and "no setup.json" not in html
    assert not [m for m in _messages(events) if "not written" in m]


def test_ctrl_c_leaves_a_page_too(tiny_llama_dir, data_dir, tmp_path):
    def interrupt_at_2(event, payload):
        if event == "step" and payload["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: checkpoint, then stop

    run = tmp_path / "cut"
    outcome = run_training(make_cfg(tiny_llama_dir, data_dir, run, iters=6), callback=interrupt_at_2)
    assert outcome.result.interrupted
    html = (run / "report.html").read_text()
    assert '<div class="card-value">2/6</div><div class="card-label">steps</div>' in html
    assert "stopped before the end" in html


def test_a_failing_report_never_fails_the_run(tiny_llama_dir, data_dir, tmp_path, monkeypatch):
    import mlxsft.report

    def broken(paths, out):
        raise ValueError("disk says no")

    monkeypatch.setattr(mlxsft.report, "write_report", broken)
    events = []
    run = tmp_path / "run"
    outcome = run_training(make_cfg(tiny_llama_dir, data_dir, run, iters=2), callback=lambda e, p: events.append((e, p)))
    assert outcome.result.steps == 2 and (run / "adapters.safetensors").is_file()
    assert not (run / "report.html").exists()
    failed = [m for m in _messages(events) if "report.html not written" in m]
    assert failed == [f"report.html not written (ValueError: disk says no); `mlxsft report {run}` makes it"]


def test_the_summary_names_the_page(tmp_path, capsys):
    from types import SimpleNamespace

    from mlxsft.cli.ui.train import TrainView
    from mlxsft.config import load_config

    result = SimpleNamespace(steps=4, total_steps=4, elapsed_s=1.0, tokens_per_sec=100.0, train_loss=1.5,
                             val_loss=None, best_val_loss=None, best_step=None, peak_memory_gb=0.1, interrupted=False,
                             stopped_early=False)
    outcome = SimpleNamespace(planned_only=False, run_dir=tmp_path, result=result, compare_stopped=False)
    TrainView(load_config(None, {})).finish(outcome)
    assert "report:" not in capsys.readouterr().out  # no page, no line
    (tmp_path / "report.html").write_text("<html></html>")
    TrainView(load_config(None, {})).finish(outcome)
    assert f"report: {tmp_path / 'report.html'}" in capsys.readouterr().out
