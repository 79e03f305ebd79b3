"""Ctrl-C and SIGTERM during ``mlxsft train``: checkpoint, a clean exit with the resume command; twice: exit now."""

from __future__ import annotations

import signal
import time

import pytest

from mlxsft.runs import latest_checkpoint, partial_files
from tests.helpers import write_data
from tests.reliability.killloop import check_run_folder, load_checkpoint_files, train_args
from tests.reliability.launcher import run_cli, start_cli


def _signal_after_step(run, sig: int, step: int = 2, times: int = 1) -> None:
    for line in run.lines(timeout=300):
        if line.startswith(f"step {step}/"):
            for _ in range(times):
                run.signal(sig)
                # signals sent back to back reach Python's handler as one; a person presses twice
                time.sleep(0.05)
            break


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_checkpoints_then_exits_cleanly_with_the_resume_command(tiny_llama_dir, tmp_path, sig):
    data, out = write_data(tmp_path / "data"), tmp_path / "run"
    # no periodic checkpoints: the only one after step 1 is the one the signal asks for
    args = train_args(tiny_llama_dir, data, out, 200, "mlx")
    args[args.index("--save-every") + 1] = "0"
    run = start_cli(args, tmp_path)
    _signal_after_step(run, sig)
    code = run.wait(120)
    stdout, stderr = run.stdout(), run.stderr()
    assert code == 130, stderr
    assert "Traceback" not in stdout + stderr
    assert f"resume with: mlxsft train --resume {out}" in stdout
    step = load_checkpoint_files(latest_checkpoint(out), "mlx")
    assert 2 <= step < 200 and f"interrupted at step {step}; checkpoint saved" in stdout
    assert check_run_folder(out, "mlx") == [] and partial_files(out) == []

    code, stdout, stderr = run_cli(["train", "--resume", str(out), "--iters", str(step + 2)], tmp_path)
    assert code == 0, stderr
    assert f"resuming at step {step}" in stdout


def test_a_second_ctrl_c_exits_at_once_and_the_run_still_resumes(tiny_llama_dir, tmp_path):
    data, out = write_data(tmp_path / "data"), tmp_path / "run"
    run = start_cli(train_args(tiny_llama_dir, data, out, 200, "mlx"), tmp_path)
    _signal_after_step(run, signal.SIGINT, step=3, times=2)
    code = run.wait(60)
    stderr = run.stderr()
    # one line, exit 130, naming the checkpoint that is left and the command that goes on from it
    assert code == 130 and "Traceback" not in stderr, (code, stderr, run.stdout()[-1500:])
    assert len(stderr.strip().splitlines()) == 1, stderr
    # whatever the second Ctrl-C cut short, the last checkpoint loads and --resume finishes the run
    assert check_run_folder(out, "mlx") == []
    checkpoint = latest_checkpoint(out)
    assert stderr.strip() == (f"stopped at once by Ctrl-C; the last checkpoint ({checkpoint.name}) is intact, "
                              f"resume with: mlxsft train --resume {out}"), stderr
    step = load_checkpoint_files(checkpoint, "mlx")
    code, stdout, stderr = run_cli(["train", "--resume", str(out), "--iters", str(step + 1)], tmp_path)
    assert code == 0, stderr
    assert partial_files(out) == []
