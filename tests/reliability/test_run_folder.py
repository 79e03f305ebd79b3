"""Run folders: a non-empty --out is refused, one training per folder (a lock), disk space, partial files."""

from __future__ import annotations

import errno
import os
import signal
from collections import namedtuple
from pathlib import Path

import pytest

from mlxsft import files
from mlxsft.errors import RunError
from mlxsft.files import check_free_space
from mlxsft.runs import RunLock, latest_checkpoint, partial_files, prepare_run_dir, write_checkpoint
from tests.helpers import write_data
from tests.reliability.killloop import load_checkpoint_files, train_args
from tests.reliability.launcher import run_cli, start_cli


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_non_empty_out_is_refused_unless_overwrite(tiny_llama_dir, tmp_path):
    data, out = write_data(tmp_path / "data"), tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, stderr = run_cli(train_args(tiny_llama_dir, data, out, 1, "mlx"), tmp_path)
    assert code == 1
    line = _one_error_line(stderr)
    assert f"{out}: run folder is not empty" in line and "--overwrite" in line and "--resume" in line
    assert (out / "notes.txt").read_text() == "mine"

    # --overwrite replaces run folders only: a folder of the user's own keeps every file
    code, _, stderr = run_cli(train_args(tiny_llama_dir, data, out, 1, "mlx") + ["--overwrite"], tmp_path)
    assert code == 1
    assert "--overwrite refused: not an mlxsft run folder" in _one_error_line(stderr)
    assert (out / "notes.txt").read_text() == "mine"

    run = tmp_path / "run2"
    code, _, stderr = run_cli(train_args(tiny_llama_dir, data, run, 1, "mlx"), tmp_path)
    assert code == 0, stderr
    (run / "notes.txt").write_text("left in the run folder")
    code, _, stderr = run_cli(train_args(tiny_llama_dir, data, run, 1, "mlx") + ["--overwrite"], tmp_path)
    assert code == 0, stderr
    assert not (run / "notes.txt").exists() and (run / "adapters.safetensors").is_file()


def test_a_second_training_into_a_busy_run_folder_is_refused_and_touches_nothing(tiny_llama_dir, tmp_path):
    data, out = write_data(tmp_path / "data"), tmp_path / "run"
    first = start_cli(train_args(tiny_llama_dir, data, out, 400, "mlx"), tmp_path, name="first")
    for line in first.lines(timeout=300):
        if line.startswith("step 3/"):
            break
    try:
        for extra in (["--resume", str(out)], None):
            args = ["train", *extra] if extra else train_args(tiny_llama_dir, data, out, 5, "mlx") + ["--overwrite"]
            code, _, stderr = run_cli(args, tmp_path)
            assert code == 1
            line = _one_error_line(stderr)
            assert f"{out}: another training (pid {first.pid}) is using this run folder" in line, line
            assert first.alive()  # and its folder is still there: --overwrite deleted nothing
            assert (out / "config.yaml").is_file() and (out / "checkpoints" / "latest").is_file()
    finally:
        first.signal(signal.SIGTERM)
    assert first.wait(120) == 130
    load_checkpoint_files(latest_checkpoint(out), "mlx")


def test_the_lock_is_held_per_folder_and_released_on_exit(tmp_path):
    out = prepare_run_dir(tmp_path / "run", resume=False)
    with RunLock(out):
        with pytest.raises(RunError, match="another training"):
            prepare_run_dir(out, resume=False, overwrite=True)
        with pytest.raises(RunError, match="another training"):
            RunLock(out).__enter__()
    (out / "x").write_text("x")
    prepare_run_dir(out, resume=False, overwrite=True)  # free again: --overwrite proceeds
    assert not (out / "x").exists()



def test_claiming_locks_before_it_checks_or_deletes(tmp_path):
    from mlxsft.runs import claim_run_dir

    out = tmp_path / "run"
    with claim_run_dir(out, resume=False) as claimed:
        assert claimed == out and (out / ".lock").is_file()
        (out / "config.yaml").write_text("x")
        with pytest.raises(RunError, match="another training"):  # a second start, even with --overwrite
            with claim_run_dir(out, resume=False, overwrite=True):
                pass
        assert (out / "config.yaml").read_text() == "x"  # nothing of the running one was touched
    with pytest.raises(RunError, match="not empty"):
        with claim_run_dir(out, resume=False):
            pass
    with claim_run_dir(out, resume=False, overwrite=True):
        assert sorted(p.name for p in out.iterdir()) == [".lock", ".mlxsft-run"]  # replaced, lock and marker kept
    with pytest.raises(RunError, match="nothing to resume"):
        with claim_run_dir(tmp_path / "never", resume=True):
            pass
    assert not (tmp_path / "never").exists()

def _checkpoint(run_dir: Path, step: int, size: int = 1000) -> Path:
    def write(tmp: Path) -> None:
        (tmp / "state.json").write_text(f'{{"step": {step}}}')
        (tmp / "weights.bin").write_bytes(b"w" * size)

    return write_checkpoint(run_dir, step, write, need_bytes=size)


def test_resume_removes_what_a_killed_writer_left_and_nothing_else(tmp_path):
    out = prepare_run_dir(tmp_path / "run", resume=False)
    _checkpoint(out, 1)
    (out / "best").mkdir()
    leftovers = [out / ".adapters.tmp-123.safetensors", out / ".metrics.jsonl.tmp-9", out / "best" / ".x.tmp-1",
                 out / "checkpoints" / ".latest.tmp-77"]
    for f in leftovers:
        f.write_text("half")
    (out / "checkpoints" / ".tmp-step-00000002").mkdir()
    (out / ".peft-abc").mkdir()
    keep = [out / "adapters.safetensors", out / "metrics.jsonl", out / "best" / "adapters.safetensors"]
    for f in keep:
        f.write_text("whole")
    assert len(partial_files(out)) == 6
    prepare_run_dir(out, resume=True)
    assert partial_files(out) == []
    assert all(f.read_text() == "whole" for f in keep)
    assert latest_checkpoint(out).name == "step-00000001"


def test_resume_before_any_checkpoint_says_that_resume_starts_it(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("train: {}\n")
    with pytest.raises(RunError) as e:
        prepare_run_dir(out, resume=True)
    assert "nothing to resume" in str(e.value) and f"mlxsft train --resume {out}" in str(e.value)


Usage = namedtuple("Usage", "total used free")


def test_free_space_is_checked_before_a_checkpoint_is_written(tmp_path, monkeypatch):
    out = prepare_run_dir(tmp_path / "run", resume=False)
    _checkpoint(out, 1)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: Usage(10 << 30, 10 << 30, 20 << 20))  # 20 MB free
    with pytest.raises(RunError) as e:
        _checkpoint(out, 2, size=500 << 20)
    msg = str(e.value)
    assert "not enough disk space: 0.52 GB needed (+67.1 MB kept free), 21.0 MB free" in msg
    assert "--resume" in msg  # what to do
    assert latest_checkpoint(out).name == "step-00000001" and partial_files(out) == []
    with pytest.raises(RunError, match="not enough disk space"):
        check_free_space(out, 0)  # the margin alone does not fit in 20 MB
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: Usage(10 << 30, 0, 10 << 30))
    check_free_space(out, 1 << 30)


def test_a_disk_that_fills_up_during_a_checkpoint_leaves_the_previous_one(tmp_path):
    out = prepare_run_dir(tmp_path / "run", resume=False)
    _checkpoint(out, 1)

    def write(tmp: Path) -> None:
        (tmp / "weights.bin").write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(RunError, match="not enough disk space.*No space left on device"):
        write_checkpoint(out, 2, write)
    assert latest_checkpoint(out).name == "step-00000001"
    assert partial_files(out) == [] and not (out / "checkpoints" / "step-00000002").exists()

    def broken(tmp: Path) -> None:  # not a disk problem: the original error, still no partial folder
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        write_checkpoint(out, 2, broken)
    assert partial_files(out) == []


def test_atomic_writes_report_a_full_disk_and_leave_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "config.yaml"
    target.write_text("old")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RunError, match="not enough disk space"):
        files.atomic_write_text(target, "new")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
