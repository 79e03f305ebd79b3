"""The run folder itself: its marker, the checks before anything in it is deleted, the single-writer lock,
and what a killed writer leaves behind.

    with claim_run_dir(out, resume=False, overwrite=False, keep=(data_path,)) as run_dir:
        ...                                   # locked until the block ends

``--overwrite`` empties only folders carrying mlxsft's marker (``.mlxsft-run``), never ``$HOME``, ``/``,
the current folder or one holding the job's inputs. The temporary names a kill leaves behind
(``.NAME.tmp-PID``, ``checkpoints/.tmp-step-N``, ``checkpoints/.old-step-N``) are removed, or put back,
when the run is resumed.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mlxsft.errors import RunError
from mlxsft.files import atomic_write_json
from mlxsft.runs.checkpoints import find_checkpoint, recover_checkpoints

def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    return Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


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
    check_out_dir(out, resume=resume, overwrite=overwrite, keep=keep, probe=not locked)
    if resume and find_checkpoint(out) is None:
        raise RunError(f"{out}: nothing to resume (no checkpoint)",
                       hint=f"start it with `mlxsft train --resume {out}` (from step 0, with its config.yaml)"
                       if (out / "config.yaml").is_file() else None)
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
    checked or deleted.
    """
    out = Path(out)
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
        try:
            same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except OSError:
            same = False
        if not same:  # the holder removed this file as it finished and another training made a new one: retry
            os.close(self._fd)
            self._fd = None
            return self.__enter__()
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

            self.path.unlink(missing_ok=True)  # removed while still held: a finished run leaves no .lock behind
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _held_elsewhere(e: OSError) -> bool:
    return isinstance(e, BlockingIOError) or e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)


