"""Run folders: creation, the single-writer lock, atomic writes and ``metrics.jsonl``.

A run folder holds everything a training run produces::

    runs/sft-20261129-0712/
      config.yaml  chat_template.jinja  adapter_config.json  adapters.safetensors
      metrics.jsonl  loss.png  best/  checkpoints/step-00000100/  checkpoints/latest  .lock

Every file that matters is written to a temporary name and renamed into place, so a kill at any
moment leaves either the old file or the new one, never half of one; the temporary names a kill leaves
behind (``.NAME.tmp-PID``, ``checkpoints/.tmp-step-N``) are removed when the run is resumed. Free disk
space is checked before each checkpoint, and a full disk is reported as a ``RunError`` saying how much
is needed and free, never as a half-written file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from mlxsft.errors import RunError

MARGIN_BYTES = 64 << 20  # room left for metrics, logs and the filesystem itself


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    return Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # the rename itself survives a power cut, not only a kill
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, len(data), e) from None
        raise


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def disk_full(path: Path, need_bytes: int, cause: BaseException | None = None, margin: int = 0) -> RunError:
    """The error for a write that does not fit: what, how much is needed and free, what to do."""
    free = free_bytes(path)
    why = f" ({cause})" if cause is not None else ""
    plus = f" (+{_gb(margin)} kept free)" if margin else ""
    return RunError(f"{path}: not enough disk space: {_gb(need_bytes)} needed{plus}, {_gb(free)} free{why}",
                    hint="free some space (older runs in runs/, the model cache in ~/.cache/mlxsft) or use "
                         "another --out; nothing was left half-written: continue with --resume once there is room")


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def check_free_space(path: Path, need_bytes: int) -> None:
    """Refuse, before writing, a write of ``need_bytes`` that would leave less than a small margin free."""
    if free_bytes(path) < need_bytes + MARGIN_BYTES:
        raise disk_full(path, need_bytes, margin=MARGIN_BYTES)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


RUN_MARKER = ".mlxsft-run"  # written into every run folder before anything else: --overwrite clears only these


def is_run_folder(path: Path) -> bool:
    """A folder mlxsft made for a run: its marker, or (runs from before the marker) its own files."""
    path = Path(path)
    if (path / RUN_MARKER).is_file() or (path / "run_info.json").is_file():
        return True
    return (path / "config.yaml").is_file() and (path / "base_model.txt").is_file()


def _within(inner: Path, outer: Path) -> bool:
    try:
        inner.relative_to(outer)
        return True
    except ValueError:
        return False


def check_out_dir(out: Path, *, resume: bool, overwrite: bool = False, keep: tuple[Path | str, ...] = (),
                  probe: bool = True) -> None:
    """Every check on ``--out`` that needs no lock and changes nothing; ``claim_run_dir`` repeats them locked.

    ``keep``: the paths this job reads (data, config, chat template, model): ``--overwrite`` never empties a
    folder that is or holds one of them, nor ``$HOME``, ``/`` or a folder holding the current one, and never a
    folder without mlxsft's run marker.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: --out exists and is not a folder")
    if out.is_dir() and probe:  # not when the caller holds the lock itself
        RunLock(out).probe()
    if resume or not out.is_dir() or not [p for p in out.iterdir() if p.name != ".lock"]:
        return
    if not overwrite:
        raise RunError(f"{out}: run folder is not empty",
                       hint="use --resume to continue it, --overwrite to replace it, or another --out")
    here = out.resolve()
    home = Path.home().resolve()
    if here == Path(here.anchor) or here == home or _within(Path.cwd().resolve(), here):
        what = "the filesystem root" if here == Path(here.anchor) else \
            "your home folder" if here == home else "the current folder (or holds it)"
        raise RunError(f"{out}: --overwrite refused: it is {what}", hint="give --out a folder of its own, e.g. runs/NAME")
    for path in keep:
        try:
            held = Path(path).expanduser().resolve()
        except (OSError, RuntimeError):
            continue
        if (Path(path).expanduser().exists() or held.exists()) and _within(held, here):
            raise RunError(f"{out}: --overwrite refused: it holds {path}, which this job reads",
                           hint="give --out a folder of its own, e.g. runs/NAME")
    if not is_run_folder(here):
        raise RunError(f"{out}: --overwrite refused: not an mlxsft run folder (no {RUN_MARKER})",
                       hint="mlxsft only replaces folders it made; empty it yourself or pick another --out")


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool = False, locked: bool = False,
                    keep: tuple[Path | str, ...] = ()) -> Path:
    """Create (or reopen, when resuming) a run folder; refuse to clobber anything that is not a run of ours.

    A folder another training holds (its ``.lock``) is refused before anything in it is touched, so
    ``--overwrite`` or ``--resume`` can never delete files under a running training. ``locked``: the
    caller holds the folder's ``RunLock`` already (``claim_run_dir``), which closes the gap between
    checking the lock and taking it.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: --out exists and is not a folder")
    if out.is_dir() and not locked:
        RunLock(out).probe()
    if resume and find_checkpoint(out) is None:
        raise RunError(f"{out}: nothing to resume (no checkpoint)",
                       hint=f"start it with `mlxsft train --resume {out}` (from step 0, with its config.yaml)"
                       if (out / "config.yaml").is_file() else None)
    check_out_dir(out, resume=resume, overwrite=overwrite, keep=keep, probe=False)
    entries = [p for p in out.iterdir() if p.name != ".lock"] if out.is_dir() else []
    if entries and not resume:
        for p in entries:  # everything but the lock file, which a claiming caller holds open
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        recover_checkpoints(out)
        remove_partial_files(out)
    elif not (out / RUN_MARKER).is_file():
        atomic_write_json(out / RUN_MARKER, {"what": "an mlxsft run folder", "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return out


@contextmanager
def claim_run_dir(out: Path, *, resume: bool, overwrite: bool = False,
                  keep: tuple[Path | str, ...] = ()) -> Iterator[Path]:
    """Lock the run folder, then prepare it (``prepare_run_dir``) and hold the lock until the block ends.

    Two trainings started at the same instant cannot both pass: the lock is taken before anything is
    checked or deleted. A folder that did not exist is removed again when claiming it fails.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: --out exists and is not a folder")
    if resume and find_checkpoint(out) is None:
        prepare_run_dir(out, resume=True)  # raises the "nothing to resume" error without creating anything
    check_out_dir(out, resume=resume, overwrite=overwrite, keep=keep)  # refuse before creating anything
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        yield prepare_run_dir(out, resume=resume, overwrite=overwrite, locked=True, keep=keep)


PARTIAL = (".*.tmp-*", ".tmp-*", ".old-*", ".peft-*")  # atomic writes, checkpoint folders and swaps, PEFT scratch


def partial_files(run_dir: Path) -> list[Path]:
    """What a killed writer left: temporary files and folders in the run folder, best/ and checkpoints/."""
    found: list[Path] = []
    for folder in (run_dir, run_dir / "best", run_dir / "checkpoints"):
        if folder.is_dir():
            found += sorted({p for pattern in PARTIAL for p in folder.glob(pattern)})
    return found


def remove_partial_files(run_dir: Path) -> list[Path]:
    """Delete what ``partial_files`` finds (only while no other training holds the folder)."""
    found = partial_files(Path(run_dir))
    for p in found:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return found


class RunLock:
    """An exclusive lock on a run folder, so two trainings never write into the same one."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        import fcntl

        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise self._cannot(e) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._fd)
            self._fd = None
            raise (self._busy() if _held_elsewhere(e) else self._cannot(e)) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode())
        return self

    def probe(self) -> None:
        """Raise if another process holds the lock now; take nothing (the lock file may not exist yet)."""
        import fcntl

        if not self.path.is_file():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise self._cannot(e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as e:
            raise (self._busy() if _held_elsewhere(e) else self._cannot(e)) from None
        finally:
            os.close(fd)

    def _busy(self) -> RunError:
        try:
            pid = f" (pid {int(self.path.read_text().strip())})"
        except (OSError, ValueError):
            pid = ""
        return RunError(f"{self.path.parent}: another training{pid} is using this run folder",
                        hint="wait for it to finish, stop it, or use another --out")

    def _cannot(self, e: OSError) -> RunError:
        """A lock that could not be taken for another reason than another training (e.g. ENOLCK)."""
        return RunError(f"{self.path}: cannot lock the run folder: {e.strerror or e}",
                        hint="a network filesystem may not support locks: use an --out on a local disk")

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _held_elsewhere(e: OSError) -> bool:
    return isinstance(e, BlockingIOError) or e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)


class MetricsLog:
    """Append-only ``metrics.jsonl``; each line is flushed so a crash loses at most the last one."""

    FIELDS = ("step", "epoch", "train_loss", "val_loss", "learning_rate", "grad_norm", "tokens_per_sec",
              "trained_tokens", "peak_memory_gb", "elapsed_s")

    def __init__(self, path: Path, truncate_after_step: int | None = None):
        self.path = Path(path)
        if truncate_after_step is not None and self.path.exists():
            # On resume, drop lines logged after the checkpoint we continue from.
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and _step_of(ln) <= truncate_after_step]
            atomic_write_text(self.path, "".join(k + "\n" for k in keep))

    def write(self, record: dict[str, Any]) -> None:
        row = {k: record.get(k) for k in self.FIELDS}
        row.update({k: v for k, v in record.items() if k not in row})
        line = json.dumps(row) + "\n"
        try:
            with open(self.path, "a") as f:
                f.write(line)
                f.flush()
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full(self.path, len(line), e) from None
            raise

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 60


def write_checkpoint(run_dir: Path, step: int, write: Callable[[Path], None], keep_last: int = 2,
                     need_bytes: int = 0) -> Path:
    """Write a checkpoint folder atomically; both backends' checkpoints go through here.

    ``write(tmp)`` fills ``checkpoints/.tmp-step-N``; then every file is fsynced, the folder renamed to
    ``step-N``, ``checkpoints/latest`` replaced, and all but the newest ``keep_last`` removed. A kill at any
    point leaves the previous checkpoint loadable. ``need_bytes`` (the caller's estimate of what it will
    write, or else the size of the previous checkpoint) must be free first; a write that still runs out of
    disk removes its partial folder and raises a ``RunError``.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = root / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    previous = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    need = max(need_bytes, folder_bytes(previous[-1]) if previous else 0)
    check_free_space(root, need)
    try:
        tmp.mkdir()
        write(tmp)
        inputs = Path(run_dir) / "inputs.json"  # what this step was trained on (mlxsft.train.input_keys)
        if inputs.is_file():
            shutil.copyfile(inputs, tmp / inputs.name)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    except Exception as e:  # a full disk shows up as OSError, RuntimeError or SafetensorError, by writer
        shutil.rmtree(tmp, ignore_errors=True)
        if _out_of_space(e, root, need):
            raise disk_full(root, need, e) from None
        raise
    final = root / name
    old = root / f".old-{name}"
    if final.exists():  # the same step again (a resume from an older checkpoint): swap, never delete first
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(root)  # the rename itself survives a power cut, not only a kill
    atomic_write_text(root / "latest", name + "\n")
    shutil.rmtree(old, ignore_errors=True)
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for old in done[:-keep_last]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _out_of_space(e: BaseException, root: Path, need: int) -> bool:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e).lower()
    return "no space" in text or "unable to write" in text or free_bytes(root) < need + MARGIN_BYTES


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def _complete(folder: Path) -> bool:
    return folder.is_dir() and (folder / "state.json").is_file()


def _step_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")) if root.is_dir() else []


def find_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a resume continues from: the one ``latest`` names, else the newest complete ``step-*``.

    ``latest`` can name a folder that is gone only after a crash between the two renames of a swap (see
    ``write_checkpoint``); ``recover_checkpoints`` puts the swapped-out copy back first.
    """
    root = Path(run_dir) / "checkpoints"
    ptr = root / "latest"
    if ptr.is_file():
        try:
            named = root / ptr.read_text().strip()
        except OSError:
            named = None
        if named is not None and named.parent == root and _complete(named):
            return named
        old = root / f".old-{named.name}" if named is not None else None
        if old is not None and _complete(old):
            return old
    done = [p for p in _step_folders(root) if _complete(p)]
    return done[-1] if done else None


def recover_checkpoints(run_dir: Path) -> None:
    """After a kill inside a swap: put a swapped-out ``.old-step-N`` back when ``step-N`` is missing or torn."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return
    for old in root.glob(".old-step-*"):
        final = root / old.name[len(".old-"):]
        if _complete(final):
            shutil.rmtree(old, ignore_errors=True)
        elif _complete(old):
            shutil.rmtree(final, ignore_errors=True)
            os.replace(old, final)
            _fsync_dir(root)
    found = find_checkpoint(run_dir)
    ptr = root / "latest"
    if found is not None and found.parent == root and (not ptr.is_file() or ptr.read_text().strip() != found.name):
        atomic_write_text(ptr, found.name + "\n")


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint folder of a run (``find_checkpoint``), or a RunError."""
    found = find_checkpoint(run_dir)
    if found is None:
        raise RunError(f"{run_dir}: no checkpoint to resume from")
    return found
