"""Power loss: a folder is renamed into place only after its files are fsynced, and the model cache trusts an
entry only with the ``.complete`` marker written after that."""

from __future__ import annotations

import os
from pathlib import Path

from mlxsft.models import cache, mlx_model_path
from mlxsft.files import atomic_dir


def record_syncs(monkeypatch) -> list[tuple[str, object]]:
    """Every os.fsync (as the inode it synced) and os.rename, in order."""
    events: list[tuple[str, object]] = []
    fsync, rename = os.fsync, os.rename

    def spy_fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def spy_rename(src, dst):
        events.append(("rename", Path(dst).name))
        rename(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "rename", spy_rename)
    return events


def test_files_and_folders_are_synced_before_the_rename(tmp_path, monkeypatch):
    events = record_syncs(monkeypatch)
    final = tmp_path / "new" / "out"  # "new" is created too: its entry in tmp_path is synced as well
    with atomic_dir(final, marker=".complete") as tmp:
        (tmp / "a.bin").write_bytes(b"a" * 1000)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.json").write_text("{}")
    inode = {p.relative_to(final).as_posix(): p.stat().st_ino for p in [final, *final.rglob("*")]}
    rename = events.index(("rename", "out"))
    before, after = [i for _, i in events[:rename]], [i for _, i in events[rename + 1:]]
    for name in ("a.bin", "sub/b.json", "sub", "."):
        assert inode[name] in before, name
    # the marker is written and synced after everything else, then its folder once more
    assert before[-2:] == [inode[".complete"], inode["."]]
    assert before.index(inode["a.bin"]) < before.index(inode[".complete"])
    assert (final / ".complete").read_bytes() == b""
    assert (final.parent).stat().st_ino in after and tmp_path.stat().st_ino in after


def test_export_overwrite_syncs_too(tmp_path, monkeypatch):
    from mlxsft.export.pipeline import staged_dir

    final = tmp_path / "export"
    final.mkdir()
    (final / "old.txt").write_text("old")
    events = record_syncs(monkeypatch)
    with staged_dir(final, overwrite=True) as tmp:
        (tmp / "model.gguf").write_bytes(b"GGUF")
    rename = events.index(("rename", "export"))
    synced_before = [i for kind, i in events[:rename] if kind == "fsync"]
    assert (final / "model.gguf").stat().st_ino in synced_before and final.stat().st_ino in synced_before
    assert tmp_path.stat().st_ino in [i for _, i in events[rename + 1:]]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_cache_entry_without_the_marker_is_rebuilt(tmp_path, monkeypatch, tiny_llama_dir):
    """A folder with config.json but no .complete (an older mlxsft's, or one a power loss cut) is not trusted."""
    monkeypatch.setenv("MLXSFT_CACHE", str(tmp_path / "cache"))
    entry = cache.entry_dir(tiny_llama_dir.name, cache.content_key(tiny_llama_dir), "float32")
    entry.mkdir(parents=True)
    (entry / "config.json").write_text('{"model_type": "llama"}')
    (entry / "model.safetensors").write_bytes(b"")  # the zero-length file a power loss leaves behind
    assert cache.find_entry(cache.content_key(tiny_llama_dir)) is None

    stages: list[str] = []
    assert mlx_model_path(str(tiny_llama_dir), progress=lambda stage, frac: stages.append(stage)) == entry
    assert "writing MLX weights" in stages and cache.is_complete(entry)
    assert (entry / "model.safetensors").stat().st_size > 0
    assert cache.find_entry(cache.content_key(tiny_llama_dir)) == entry
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # the stale copy is gone, no temp folders

    stages.clear()  # and now it is a hit
    assert mlx_model_path(str(tiny_llama_dir), progress=lambda stage, frac: stages.append(stage)) == entry
    assert stages == []
