"""``mlxsft data filter``: stream a JSONL dataset through quality checks, exact and near dedup, and an optional
diversity selection, and say how many rows each step removed.

    report = filter_file(FilterOptions(inp=Path("big.jsonl"), out=Path("clean.jsonl"), select=1000))
    report.removed        # {"invalid": 2, "too_short": 10, ..., "near_dup": 31, "not_selected": 8402}

Steps, in order (a row leaves at the first it fails): ``invalid`` (not JSON, or not a valid SFT row in any format
``mlxsft train`` reads), ``too_short`` / ``too_long`` / ``garbage`` / ``repetition`` / ``refusal`` (on the assistant
text, ``quality.py``), ``exact_dup`` and ``near_dup`` (on the row, prompt or response text, ``dedup.py``), and
``not_selected`` (``--select N``: N rows by prompt diversity, ``diversity.py``). Kept rows are copied byte for
byte, in input order.

Speed: the per-row work (parsing, quality checks, exact hash, MinHash) runs in ``scan.py``, in one worker process
per core from ``PARALLEL_ROWS`` lines (the output is the same for any number); MinHash is rensa's (Rust) when
installed; ``--select`` on a big pool embeds with a static model (``static_embed.py``) and prunes k-center's
comparisons (``diversity.k_center``). ``python -m bench.bench_filter`` measures 1M rows with ``--select 10000``.

Memory: rows stream through, and what is kept per row lives in numpy arrays or temporary files beside the output
(dedup: ~115 bytes per row at its peak, ``dedup.py``; ``--select``: the prompts in a file, the embeddings in a
memmap), so a million rows need a few hundred megabytes. The output (and ``--rejects``) is written to a temporary
file and renamed into place, so it is never half-written. The report (default ``OUT`` with ``.report.json``) holds
a fingerprint of the input and options: running the same command again finds the output up to date and does
nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from mlxsft.curate.dedup import EXACT, KEEP, DedupIndex
from mlxsft.curate.events import Progress, Tick, progress_or_silent
from mlxsft.curate.jsonl import BOM, dumps_row
from mlxsft.curate.quality import QualityOptions
from mlxsft.curate.scan import ScanConfig, chunked, scan_chunks, token_counter
from mlxsft.errors import ConfigError, DataError

STEPS = ("invalid", "too_short", "too_long", "garbage", "repetition", "refusal", "exact_dup", "near_dup",
         "not_selected")
DEDUP_ON = ("row", "prompt", "response")
EMBED_BATCH = 1024
PARALLEL_ROWS = 20_000  # inputs from this many lines are scanned by one worker process per core


@dataclass
class FilterOptions:
    inp: Path
    out: Path
    report: Optional[Path] = None  # default: OUT with .report.json
    rejects: Optional[Path] = None  # removed rows with their reason
    quality: QualityOptions = field(default_factory=QualityOptions)
    tokenizer: Optional[str] = None  # count tokens with this model's tokenizer (default: approx_tokens)
    dedup: bool = True
    near_dup: float = 0.8  # Jaccard threshold; 0 turns near dedup off
    num_perm: int = 128
    minhash: str = "auto"  # near dedup's MinHash: rensa (if installed) or datasketch (minhash.py)
    dedup_on: str = "row"
    select: Optional[int] = None
    embedder: str = "auto"
    select_method: str = "kcenter"
    seed: int = 0
    overwrite: bool = False
    workers: Optional[int] = None  # processes for the first pass (default: one per core from PARALLEL_ROWS lines)

    @property
    def report_path(self) -> Path:
        if self.report is not None:
            return self.report
        name = self.out.name[: -len(self.out.suffix)] if self.out.suffix else self.out.name
        return self.out.with_name(name + ".report.json")

    def settings(self) -> dict[str, Any]:
        """What decides the output, besides the input's bytes: part of the fingerprint."""
        d = dataclasses.asdict(self)
        for k in ("inp", "out", "report", "rejects", "overwrite", "workers"):  # workers: same output for any
            d.pop(k)
        return d


@dataclass
class FilterReport:
    input: str
    output: str
    rows_in: int = 0
    rows_out: int = 0
    removed: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STEPS})
    embedder: Optional[str] = None
    minhash: Optional[str] = None  # the MinHash backend near dedup used
    token_counter: str = "approx"
    settings: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    elapsed_s: float = 0.0
    up_to_date: bool = False  # this run found the output already done

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("up_to_date")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FilterReport":
        names = {f.name for f in dataclasses.fields(cls)}
        report = cls(**{k: v for k, v in d.items() if k in names})
        report.removed = {s: int(report.removed.get(s, 0)) for s in STEPS}  # the file's keys are sorted
        return report


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            if raw.strip():
                yield lineno, raw if raw.endswith(b"\n") else raw + b"\n"


# bumped when the same input and settings give a different output (2: near dups confirmed by exact Jaccard), so
# an output written by an older rule is not taken for up to date
RULES = 2


def fingerprint(path: Path, settings: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps({**settings, "rules": RULES}, sort_keys=True).encode())
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def _check(opts: FilterOptions) -> None:
    if not opts.inp.is_file():
        raise DataError("file not found", file=str(opts.inp))
    if opts.dedup_on not in DEDUP_ON:
        raise ConfigError(f"--dedup-on {opts.dedup_on}: expected one of {', '.join(DEDUP_ON)}")
    if opts.select is not None and opts.select < 1:
        raise ConfigError(f"--select must be at least 1, got {opts.select}")
    if not 0 <= opts.near_dup <= 1:
        raise ConfigError(f"--near-dup must be between 0 (off) and 1, got {opts.near_dup}")
    q = opts.quality
    if q.max_tokens is not None and q.max_tokens < q.min_tokens:
        raise ConfigError(f"--max-tokens {q.max_tokens} is below --min-tokens {q.min_tokens}")
    paths = [opts.inp.resolve(), opts.out.resolve(), opts.report_path.resolve()]
    if opts.rejects is not None:
        paths.append(opts.rejects.resolve())
    if len(set(paths)) != len(paths):
        raise ConfigError("--in, --out, --report and --rejects must be different files")


def filter_file(opts: FilterOptions, progress: Optional[Progress] = None) -> FilterReport:
    tick = progress_or_silent(progress)
    _check(opts)
    start = time.perf_counter()
    if opts.near_dup > 0:  # the backend that will run, not "auto": their signatures differ
        from mlxsft.curate.minhash import resolve_backend

        opts = dataclasses.replace(opts, minhash=resolve_backend(opts.minhash))
    settings = json.loads(json.dumps(opts.settings()))  # plain JSON types, as read back from a report
    if opts.out.exists() and not opts.overwrite:
        done = _finished_report(opts, settings)
        if done is not None:
            return done
        raise ConfigError(f"{opts.out}: exists, and was not made from this input with these options",
                          hint="use another --out, or --overwrite")
    _, counter_name = token_counter(opts.tokenizer)
    report = FilterReport(input=str(opts.inp), output=str(opts.out), token_counter=counter_name,
                          settings=settings, fingerprint=fingerprint(opts.inp, settings))
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{opts.out.name}.", dir=opts.out.parent) as tmp_dir:
        tmp = Path(tmp_dir)
        rejects = open(tmp / "rejects.jsonl", "wb") if opts.rejects is not None else None
        try:
            lines = array("I")  # input line of each row still in, 4 bytes a row
            passed = _quality_pass(opts, report, tmp, lines, rejects, tick)
            kept, lines = _dedup_pass(opts, report, passed, lines, rejects, tick)
            if opts.select is not None and report.rows_out > opts.select:
                kept = _select(opts, report, kept, lines, tmp, rejects, tick)
        finally:
            if rejects is not None:
                rejects.close()
        report.elapsed_s = time.perf_counter() - start
        _durable_replace(kept, opts.out)
        if opts.rejects is not None:
            _durable_replace(tmp / "rejects.jsonl", opts.rejects)
    from mlxsft.files import atomic_write_json

    atomic_write_json(opts.report_path, report.to_dict())
    return report


def _finished_report(opts: FilterOptions, settings: dict[str, Any]) -> Optional[FilterReport]:
    path = opts.report_path
    if not path.is_file():
        return None
    try:
        old = FilterReport.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None
    if old.fingerprint != fingerprint(opts.inp, settings):
        return None
    old.up_to_date = True
    return old


def _durable_replace(src: Path, dst: Path) -> None:
    with open(src, "rb") as f:
        os.fsync(f.fileno())
    os.replace(src, dst)


def _reject(rejects: Any, reason: str, source: str, raw: bytes, detail: Optional[str] = None) -> None:
    if rejects is None:
        return
    try:
        row: Any = json.loads(raw)
    except ValueError:
        row = raw.decode("utf-8", "replace").rstrip("\n")
    entry = {"reason": reason, "source": source, "row": row}
    if detail:
        entry["detail"] = detail
    rejects.write(dumps_row(entry))


def _quality_pass(opts: FilterOptions, report: FilterReport, tmp: Path, lines: array, rejects: Any,
                  tick: Callable[[Tick], None]) -> tuple[Path, DedupIndex]:
    """Stream the input: drop invalid and low-quality rows, hand the rest to the dedup index (``scan.py`` does the
    per-row work, in worker processes on a big input)."""
    index = DedupIndex(tmp, exact=opts.dedup, near=opts.near_dup, num_perm=opts.num_perm, minhash=opts.minhash)
    report.minhash = index.minhash
    total = count_lines(opts.inp)
    name = str(opts.inp)
    cfg = ScanConfig(quality=opts.quality, tokenizer=opts.tokenizer, name=name, dedup_on=opts.dedup_on,
                     exact=opts.dedup, near=opts.near_dup, num_perm=opts.num_perm, minhash=opts.minhash,
                     prompts=opts.select is not None)
    workers = opts.workers or (available_cpus() if total >= PARALLEL_ROWS else 1)
    removed = report.removed
    path = tmp / "passed.jsonl"
    # --select embeds each kept row's prompt: written now, one JSON string a line, so no row is parsed twice
    prompts = open(tmp / "prompts.jsonl", "wb") if opts.select is not None else None
    with open(path, "wb") as passed:
        for chunk, scanned in scan_chunks(cfg, chunked(_lines(opts.inp)), workers):
            for (lineno, raw), reason, problem in zip(chunk, scanned.reasons, scanned.problems):
                if reason is None:
                    passed.write(raw)
                    lines.append(lineno)
                else:
                    removed[reason] += 1
                    _reject(rejects, reason, f"{name}:{lineno}", raw, problem)
            index.add_keys(scanned.hashes, scanned.sigs, scanned.keys, scanned.key_counts)
            if prompts is not None:
                prompts.write(b"".join(json.dumps(p).encode() + b"\n" for p in scanned.prompts))
            report.rows_in += len(chunk)
            tick(Tick("filter", min(chunk[-1][0], total), total, {"kept": len(lines), **removed}))
        tick(Tick("filter", total, total, {"kept": len(lines), **removed}))
    if prompts is not None:
        prompts.close()
    return path, index


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _dedup_pass(opts: FilterOptions, report: FilterReport, passed: tuple[Path, DedupIndex], lines: array,
                rejects: Any, tick: Callable[[Tick], None]) -> tuple[Path, array]:
    """Find the exact and near duplicates among the rows that passed, and copy the rest."""
    path, index = passed
    dups = index.resolve(progress=lambda done, total: tick(Tick("near dedup", done, total)))
    report.removed.update(dups.counts())
    kept_path, kept_lines = path.with_name("kept.jsonl"), array("I")
    prompts_path = path.with_name("prompts.jsonl")
    prompts = open(prompts_path, "rb") if prompts_path.exists() else None
    kept_prompts = open(path.with_name("kept-prompts.jsonl"), "wb") if prompts is not None else None
    with open(kept_path, "wb") as kept:
        for i, (_, raw) in enumerate(_lines(path)):
            prompt = prompts.readline() if prompts is not None else b""
            if dups.kind[i] == KEEP:
                kept.write(raw)
                kept_lines.append(lines[i])
                if kept_prompts is not None:
                    kept_prompts.write(prompt)
            else:
                reason = "exact_dup" if dups.kind[i] == EXACT else "near_dup"
                detail = f"{'duplicate' if dups.kind[i] == EXACT else 'near-duplicate'} of " \
                         f"{opts.inp}:{lines[int(dups.of[i])]}"
                _reject(rejects, reason, f"{opts.inp}:{lines[i]}", raw, detail)
    path.unlink()
    if prompts is not None and kept_prompts is not None:
        prompts.close()
        kept_prompts.close()
        prompts_path.unlink()
    report.rows_out = len(kept_lines)
    return kept_path, kept_lines


def _select(opts: FilterOptions, report: FilterReport, kept: Path, kept_lines: array, tmp: Path, rejects: Any,
            tick: Callable[[Tick], None]) -> Path:
    """Embed each kept row's prompt (its response for plain-text rows) into a memmap, choose, copy the chosen.

    k-center embeds each distinct prompt once (``distill --k 4`` writes four rows per prompt): the traversal never
    picks a copy of a pick while another row is left, so choosing among distinct prompts (each standing for its
    first row) and then, if N is larger, the next rows in order, picks what it would pick among all rows."""
    import numpy as np

    from mlxsft.curate.diversity import make_embedder, select

    n = report.rows_out
    embedder = make_embedder(opts.embedder, seed=opts.seed, rows=n)
    report.embedder = embedder.name

    def texts() -> Iterator[str]:
        with open(tmp / "kept-prompts.jsonl", "rb") as f:
            for line in f:
                yield json.loads(line)

    if embedder.needs_fit:
        embedder.fit(texts())
    first_row = array("I")  # the kept row each embedded prompt stands for
    distinct: dict[str, None] = {}
    if opts.select_method == "kcenter":
        for i, text in enumerate(texts()):
            if text not in distinct:
                distinct[text] = None
                first_row.append(i)
        unique: Any = iter(distinct)
    else:  # k-means follows density: every row counts
        first_row.extend(range(n))
        unique = texts()
    m = len(first_row)
    vectors = np.lib.format.open_memmap(tmp / "vectors.npy", mode="w+", dtype=np.float32, shape=(m, embedder.dim))
    done, batch = 0, []
    for text in unique:
        batch.append(text)
        if len(batch) == EMBED_BATCH or done + len(batch) == m:
            vectors[done:done + len(batch)] = embedder.embed(batch)
            done += len(batch)
            batch = []
            tick(Tick("embed", done, m))
    distinct.clear()
    vectors.flush()
    tick(Tick("select", 0, 1))
    chosen = {first_row[i] for i in select(vectors, min(opts.select, m), opts.select_method, seed=opts.seed)}
    rest = (i for i in range(n) if i not in chosen)
    chosen.update(next(rest) for _ in range(opts.select - len(chosen)))  # N beyond the distinct prompts
    tick(Tick("select", 1, 1))
    del vectors
    out_path = tmp / "selected.jsonl"
    with open(out_path, "wb") as out:
        for i, (_, raw) in enumerate(_lines(kept)):
            if i in chosen:
                out.write(raw)
            else:
                report.removed["not_selected"] += 1
                _reject(rejects, "not_selected", f"{opts.inp}:{kept_lines[i]}", raw)
    report.rows_out = len(chosen)
    return out_path
