"""The live training panel on a pseudo-terminal, as a user sees it: each number labelled once, a time estimate
that survives validation, and an interrupted run that says it stopped."""

from __future__ import annotations

import re
import sys

from tests.chat.test_repl import Terminal
from tests.helpers import write_data

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _train(tiny_llama_dir, tmp_path, *extra: str) -> Terminal:
    data = write_data(tmp_path / "data")
    return Terminal([sys.executable, "-m", "mlxsft", "train", "--model", str(tiny_llama_dir), "--data", str(data),
                     "--out", str(tmp_path / "run"), "--batch-size", "2", "--max-seq-len", "64", "--no-compare",
                     "--report-every", "1", "--eval-every", "3", "--save-every", "0", *extra])


def test_the_panel_labels_its_loss_and_keeps_a_time_estimate_through_validation(tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLXSFT_NO_BLAS_REEXEC", "1")
    term = _train(tiny_llama_dir, tmp_path, "--iters", "12")
    screen = ANSI.sub("", term.read_until("tuned weights:", timeout=300))
    assert term.wait(60) == 0
    assert "smoothed" not in screen and re.search(r"train loss\s+\d+\.\d{4}\s+\((step \d+|mean of steps \d+–\d+)\)", screen), screen[-1500:]
    after_eval = screen[screen.index("val loss  "):] if "val loss  " in screen else screen
    etas = re.findall(r"(\d+:\d\d:\d\d|-:--:--) left", after_eval)
    assert etas and "-:--:--" not in etas[1:], etas  # once measured, validation never blanks it
    assert "done: 12/12 steps" in screen and "last step's train loss" in screen


def test_an_interrupted_run_ends_with_stopped_at_step(tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLXSFT_NO_BLAS_REEXEC", "1")
    import pyte

    term = _train(tiny_llama_dir, tmp_path, "--iters", "400")
    raw = term.read_until("left", timeout=300) + term.read_until("left", timeout=60)
    term.type("\x03")  # Ctrl-C: checkpoint, then stop
    raw += term.read_until("resume with:", timeout=120)
    assert term.wait(60) == 130
    screen = ANSI.sub("", raw)
    assert re.search(r"stopped at step \d+/400", screen) and "done:" not in screen
    shown = pyte.Screen(120, 40)  # what is left on a 120x40 terminal, as a person sees it
    pyte.Stream(shown).feed(raw)
    assert sum(line.count("╭") for line in shown.display) == 1, "\n".join(shown.display)  # no stray panel tops
