"""What a training may delete, pin and lock: --overwrite only on run folders, checkpoints that survive a stop
on a save step, resumes pinned to their data and model, lock errors as they are, runs that never started."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlxsft import files
from mlxsft.errors import RunError
from mlxsft.runs import (RUN_MARKER, RunLock, check_out_dir, find_checkpoint, latest_checkpoint, partial_files,
                         prepare_run_dir, write_checkpoint)
from tests.helpers import write_data
from tests.reliability.killloop import load_checkpoint_files, train_args
from tests.reliability.launcher import run_cli, start_cli


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------- 1: --overwrite empties only run folders
def test_overwrite_refuses_home_root_cwd_and_folders_holding_inputs(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "docs").mkdir(parents=True)
    (home / "docs" / "thesis.tex").write_text("years of work")
    (home / RUN_MARKER).write_text("{}")  # even a marker does not make $HOME deletable
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(RunError, match="it is your home folder"):
        check_out_dir(home, resume=False, overwrite=True)
    with pytest.raises(RunError, match="it is the filesystem root"):
        check_out_dir(Path("/"), resume=False, overwrite=True)
    monkeypatch.chdir(home / "docs")
    with pytest.raises(RunError, match="the current folder"):
        check_out_dir(Path("."), resume=False, overwrite=True)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / RUN_MARKER).write_text("{}")
    monkeypatch.chdir(tmp_path / "a" / "b")
    with pytest.raises(RunError, match="the current folder"):  # a folder above the current one too
        check_out_dir(Path(".."), resume=False, overwrite=True)
    run = tmp_path / "project"
    (run / "data").mkdir(parents=True)
    (run / "data" / "train.jsonl").write_text("{}\n")
    (run / RUN_MARKER).write_text("{}")
    with pytest.raises(RunError, match="it holds .*train.jsonl, which this job reads"):
        check_out_dir(run, resume=False, overwrite=True, keep=(str(run / "data" / "train.jsonl"),))
    with pytest.raises(RunError, match="not an mlxsft run folder"):
        check_out_dir(tmp_path / "project" / "data", resume=False, overwrite=True)
    assert (home / "docs" / "thesis.tex").read_text() == "years of work"


def test_train_overwrite_into_the_data_folder_deletes_nothing(tiny_llama_dir, tmp_path):
    data = write_data(tmp_path / "data")
    before = _tree(data)
    (data / RUN_MARKER).write_text("{}")  # it even looks like a run folder: it holds the data, so no
    code, _, stderr = run_cli(train_args(tiny_llama_dir, data, data, 1, "mlx") + ["--overwrite"], tmp_path)
    assert code == 1
    assert "--overwrite refused: it holds" in _error_line(stderr)
    (data / RUN_MARKER).unlink()
    assert _tree(data) == before
    config = tmp_path / "cfgdir"
    config.mkdir()
    (config / "c.yaml").write_text("iters: 1\n")
    (config / RUN_MARKER).write_text("{}")
    code, _, stderr = run_cli(train_args(tiny_llama_dir, data, config, 1, "mlx")
                              + ["--overwrite", "--config", str(config / "c.yaml")], tmp_path)
    assert code == 1 and "--overwrite refused: it holds" in _error_line(stderr)
    assert (config / "c.yaml").read_text() == "iters: 1\n"


# ----------------------------------------------------------------- 4: a stop on a save step
def _checkpoint(run_dir: Path, step: int, tag: str = "a") -> Path:
    def write(tmp: Path) -> None:
        (tmp / "weights.bin").write_text(tag)
        (tmp / "state.json").write_text(json.dumps({"step": step}))

    return write_checkpoint(run_dir, step, write, need_bytes=10)


def test_writing_a_step_again_swaps_by_rename_and_a_kill_in_the_swap_loses_nothing(tmp_path, monkeypatch):
    out = prepare_run_dir(tmp_path / "run", resume=False)
    _checkpoint(out, 1)
    _checkpoint(out, 2, "first")
    _checkpoint(out, 2, "second")  # the same step again: replaced whole
    assert (latest_checkpoint(out) / "weights.bin").read_text() == "second"
    assert partial_files(out) == []

    real_replace, calls = os.replace, []

    def dies_after_the_first_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # step-2 moved aside, the new copy not yet in place: a kill lands here
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_after_the_first_rename)
    with pytest.raises(KeyboardInterrupt):
        _checkpoint(out, 2, "third")
    monkeypatch.setattr(os, "replace", real_replace)
    assert not (out / "checkpoints" / "step-00000002").exists()
    found = find_checkpoint(out)  # latest names a missing folder: the swapped-out copy is still whole
    assert found is not None and (found / "weights.bin").read_text() == "second"
    prepare_run_dir(out, resume=True)  # what --resume does first: put it back, remove the temporaries
    assert latest_checkpoint(out).name == "step-00000002"
    assert (latest_checkpoint(out) / "weights.bin").read_text() == "second"
    assert partial_files(out) == []


def test_latest_naming_a_missing_folder_falls_back_to_the_newest_complete_step(tmp_path):
    out = prepare_run_dir(tmp_path / "run", resume=False)
    _checkpoint(out, 1)
    _checkpoint(out, 2)
    (out / "checkpoints" / "latest").write_text("step-00000009\n")
    assert latest_checkpoint(out).name == "step-00000002"
    (out / "checkpoints" / "step-00000002" / "state.json").unlink()  # torn: not complete
    assert latest_checkpoint(out).name == "step-00000001"


def test_ctrl_c_on_a_save_step_saves_that_step_once(tiny_llama_dir, tmp_path):
    data, out = write_data(tmp_path / "data"), tmp_path / "run"
    run = start_cli(train_args(tiny_llama_dir, data, out, 200, "mlx"), tmp_path)  # --save-every 1: every step saves
    for line in run.lines(timeout=300):
        if line.startswith("step 2/"):
            run.signal(signal.SIGINT)
            break
    assert run.wait(120) == 130
    stdout = run.stdout()
    saved = re.findall(r"^checkpoint step (\d+):", stdout, re.M)
    assert saved and len(saved) == len(set(saved)), saved  # no step written twice
    step = load_checkpoint_files(latest_checkpoint(out), "mlx")
    assert f"interrupted at step {step}; checkpoint saved" in stdout and str(step) == saved[-1]


# ----------------------------------------------------------------- 9: a resume is pinned to its inputs
def test_resume_refuses_edited_data_unless_accepted(tiny_llama_dir, tmp_path):
    data, out = write_data(tmp_path / "data"), tmp_path / "run"
    code, _, stderr = run_cli(train_args(tiny_llama_dir, data, out, 2, "mlx"), tmp_path)
    assert code == 0, stderr
    saved = json.loads((out / "inputs.json").read_text())
    assert saved["train_data"] and saved["model"].startswith("sha256:") and saved["model_revision"] is None
    assert json.loads((latest_checkpoint(out) / "inputs.json").read_text()) == saved  # in the checkpoint too
    with open(data / "train.jsonl", "a") as f:
        f.write(json.dumps({"messages": [{"role": "user", "content": "New?"},
                                         {"role": "assistant", "content": "Yes."}]}) + "\n")
    code, _, stderr = run_cli(["train", "--resume", str(out), "--iters", "3"], tmp_path)
    assert code == 1
    line = _error_line(stderr)
    assert "the training data changed since the checkpoint" in line and "--accept-changes" in line
    code, stdout, stderr = run_cli(["train", "--resume", str(out), "--iters", "3", "--accept-changes"], tmp_path)
    assert code == 0, stderr
    assert "changed since the checkpoint; continuing on them" in stdout
    assert json.loads((out / "inputs.json").read_text())["train_data"] != saved["train_data"]


def test_a_changed_model_or_hub_revision_is_refused(tmp_path):
    from mlxsft.models.fingerprint import hub_revision, model_content_key
    from mlxsft.train import inputs_changed

    model = tmp_path / "models--org--m" / "snapshots" / "abc123"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"\0" * (5 << 20))
    key = model_content_key(model)
    assert hub_revision(model) == "abc123" and hub_revision(tmp_path) is None
    with open(model / "model.safetensors", "r+b") as f:  # one byte in the middle of a big file, in a sampled slice
        f.seek(1 << 20)
        f.write(b"\1")
    assert model_content_key(model) != key
    run = tmp_path / "run"
    run.mkdir()
    (run / "inputs.json").write_text(json.dumps({"train_data": "t", "valid_data": None, "model": key,
                                                 "model_revision": "abc123"}))
    now = {"train_data": "t", "valid_data": None, "model": key, "model_revision": "def456"}
    with pytest.raises(RunError, match="the Hub model's revision changed since the checkpoint"):
        inputs_changed(run, now, False, lambda e, p: None)
    said = []
    inputs_changed(run, now, True, lambda e, p: said.append(p["text"]))
    assert said and "--accept-changes" in said[0]


# ----------------------------------------------------------------- 16: locks and several processes
def test_a_lock_error_that_is_not_another_training_is_reported_as_it_is(tmp_path, monkeypatch):
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(RunError) as e:
        RunLock(tmp_path).__enter__()
    assert "cannot lock the run folder: No locks available" in str(e.value) and "another training" not in str(e.value)


def test_the_lock_is_held_while_the_before_after_table_is_written(tiny_llama_dir, tmp_path, monkeypatch):
    import mlxsft.train as train_mod
    from tests.helpers import make_cfg

    seen = []

    def compare(cfg, backend, loaded, template, emit, base_memo=None):
        try:
            RunLock(Path(cfg.train.out)).probe()
            seen.append("free")
        except RunError:
            seen.append("held")

    monkeypatch.setattr(train_mod, "compare_base_and_tuned", compare)
    cfg = make_cfg(tiny_llama_dir, write_data(tmp_path / "data"), tmp_path / "run", iters=1, compare=True)
    train_mod.run_training(cfg)
    assert seen == ["held"]


class _ThreadWorld:
    """Ranks as threads: all-sums through a barrier, enough to run World.agree/any for real."""

    def __init__(self, rank: int, size: int, shared: dict, barrier: threading.Barrier):
        from mlxsft.distributed import World

        self.world = World(rank, size)
        self.world._all_sum = self._all_sum  # type: ignore[method-assign]
        self.rank, self.size, self.shared, self.barrier = rank, size, shared, barrier

    def _all_sum(self, values: list[float]) -> list[float]:
        self.shared[self.rank] = values
        self.barrier.wait()
        total = [sum(v[i] for v in self.shared.values()) for i in range(len(values))]
        self.barrier.wait()
        return total


@pytest.mark.parametrize("keys,agreed", [(["a", "a", "a"], True), (["a", "a", "b"], False)])
def test_ranks_agree_on_one_key_or_all_stop(keys, agreed):
    shared: dict = {}
    barrier = threading.Barrier(len(keys))
    results: dict = {}

    def rank(r: int) -> None:
        results[r] = _ThreadWorld(r, len(keys), shared, barrier).world.agree(keys[r])

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(len(keys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {r: agreed for r in range(len(keys))}


def test_a_rank_stops_when_the_main_process_cannot_claim_the_folder(smol_tokenizer, tmp_path, monkeypatch):
    """Rank 1 of 2 whose rank 0 failed to claim: it stops with a clear error instead of waiting in a collective."""
    import mlxsft.backends.registry as registry
    import mlxsft.train as train_mod
    from tests.helpers import make_cfg

    class Rank1World:
        is_main, size, sharded = False, 2, False

        def check_batch_size(self, n): pass
        def agree(self, key): return True
        def any(self, flag): return True  # rank 0 said it failed

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w")
    backend = SimpleNamespace(
        world=Rank1World(), on_gpu=lambda: False,
        load=lambda: SimpleNamespace(hf_tokenizer=smol_tokenizer, model=None, weights_path=str(weights),
                                     source=SimpleNamespace(path=weights)),
        make_trainable=lambda loaded: None, count_parameters=lambda m: (1, 1),
        memory_plan=lambda *a: SimpleNamespace(total_gb=0.0), memory_bytes=lambda: 0, before_training=lambda: None,
        trainer=lambda *a: pytest.fail("trained without the run folder"))
    monkeypatch.setattr(registry, "get_backend", lambda name, cfg, emit: backend)
    monkeypatch.setattr(train_mod, "launch_rank", lambda: 1, raising=False)
    cfg = make_cfg(tmp_path / "model", write_data(tmp_path / "data"), tmp_path / "run")
    with pytest.raises(RunError, match="the main process could not claim the run folder"):
        train_mod.run_training(cfg)


# ----------------------------------------------------------------- 17: runs that stopped before a checkpoint
def test_resume_of_a_run_without_a_checkpoint_starts_it_from_step_0(tiny_llama_dir, tmp_path):
    data, out = write_data(tmp_path / "data"), tmp_path / "run"
    code, _, stderr = run_cli(train_args(tiny_llama_dir, data, out, 2, "mlx"), tmp_path)
    assert code == 0, stderr
    import shutil

    shutil.rmtree(out / "checkpoints")  # as if killed before its first checkpoint, config.yaml written
    code, stdout, stderr = run_cli(["train", "--resume", str(out)], tmp_path)
    assert code == 0, stderr
    assert f"{out} has no checkpoint yet: starting it from step 0 with its config.yaml" in stdout
    assert latest_checkpoint(out).name == "step-00000002"


def test_resume_of_a_run_that_never_started_says_so_and_overwrite_clears_it(tiny_llama_dir, tmp_path):
    data, out = write_data(tmp_path / "data"), tmp_path / "run"
    prepare_run_dir(out, resume=False)  # killed right after the folder was made: marker, nothing else
    code, _, stderr = run_cli(["train", "--resume", str(out)], tmp_path)
    assert code == 1
    line = _error_line(stderr)
    assert "the run stopped before it started" in line and f"--out {out} --overwrite" in line
    (out / "stray.tmp").write_text("x")
    code, _, stderr = run_cli(train_args(tiny_llama_dir, data, out, 1, "mlx") + ["--overwrite"], tmp_path)
    assert code == 0, stderr
    assert not (out / "stray.tmp").exists()


# ----------------------------------------------------------------- 14: renames survive a power cut
def test_atomic_writes_sync_the_folder_after_the_rename(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(files, "sync_dir", lambda p: synced.append(Path(p)))
    files.atomic_write_text(tmp_path / "a.txt", "x")
    assert synced == [tmp_path]


# ----------------------------------------------------------------- 6: the BLAS re-exec and the current folder
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the OpenBLAS re-exec is Linux-only")
def test_the_blas_re_exec_never_imports_a_module_from_the_current_folder(tmp_path):
    from mlxsft.machine import find_openblas

    if find_openblas() is None:
        pytest.skip("no OpenBLAS here: mlxsft does not re-execute")
    (tmp_path / "click.py").write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w').write('ran')\nraise SystemExit(7)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MLXSFT_NO_BLAS_REEXEC", "PYTHONSAFEPATH")}
    mlxsft = Path(sys.executable).with_name("mlxsft")
    proc = subprocess.run([str(mlxsft), "doctor"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert not (tmp_path / "PWNED").exists(), proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "OpenBLAS" in proc.stdout  # it did re-execute with OpenBLAS preloaded
