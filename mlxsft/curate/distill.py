"""Distillation: ask a teacher (a larger local model or an endpoint) each prompt, write its answers as SFT rows.

    teacher = make_teacher("smollm2-135m-instruct")
    result = distill(teacher, DistillOptions(prompts=Path("prompts.jsonl"), out=Path("distilled.jsonl"), k=2,
                                             sampling=Sampling(temp=0.7, max_tokens=256)))

Each output row is the prompt's messages plus the teacher's answer, and a ``meta`` object (ignored by training)::

    {"messages": [..., {"role": "assistant", "content": "..."}],
     "meta": {"step": "distill", "prompt_id": "...", "source": "prompts.jsonl:3", "sample": 0,
              "teacher": "smollm2-135m-instruct", "sampling": {"temp": 0.7, ...}, "finish_reason": "stop",
              "tokens": 41, "reference": "5", "created": "2026-11-29T09:12:00Z", "mlxsft": "0.1.0"}}

Rows are appended as each batch finishes; re-running resumes (``ResumableOutput``): prompts whose K samples are
all in ``--out`` are skipped. ``--out`` must not be the prompts file, and a file mlxsft did not write is never
resumed, cut or (``--overwrite``) emptied. Answers that came back empty, and prompts the endpoint refused, are not written and
are tried again on a re-run. A repeated prompt (same id) is answered once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mlxsft import __version__
from mlxsft.curate.events import Progress, Tick, progress_or_silent
from mlxsft.curate.jsonl import ResumableOutput, refuse_same_file
from mlxsft.curate.provenance import check_same_job, now_iso
from mlxsft.curate.prompts import PromptRow, check_prompts, unique_prompts
from mlxsft.curate.teachers import Completion, Sampling, Teacher
from mlxsft.errors import ConfigError

MAX_ERRORS_KEPT = 5


@dataclass
class DistillOptions:
    prompts: Path
    out: Path
    k: int = 1  # answers per prompt
    sampling: Sampling = field(default_factory=Sampling)
    system: Optional[str] = None  # system prompt for rows without one
    batch_size: int = 16  # answers per batch; a local model gathers its answers_per_call
    overwrite: bool = False


@dataclass
class DistillResult:
    out: Path
    teacher: str
    prompts: int  # prompt rows in the file
    duplicates: int  # rows whose prompt id repeats an earlier row's
    rows_before: int  # rows already in --out (resumed)
    rows_written: int  # rows written by this run
    failed: int  # answers the endpoint refused (HTTP 400/413/422)
    empty: int  # empty answers
    tokens: int  # generated tokens, this run
    elapsed_s: float
    dropped_bytes: int = 0  # a half-written last line dropped on resume
    retries: int = 0  # endpoint requests retried
    errors: list[str] = field(default_factory=list)  # the first few failures, for the summary


def check_distill(opts: DistillOptions) -> int:
    """Check the options and every prompt row before any model is loaded; returns the number of prompt rows."""
    if opts.k < 1:
        raise ConfigError(f"--k must be at least 1, got {opts.k}")
    if opts.k > 1 and opts.sampling.temp <= 0:
        raise ConfigError(f"--k {opts.k} with --temp 0 gives {opts.k} identical answers per prompt; set --temp")
    refuse_same_file({"--prompts": opts.prompts, "--out": opts.out})
    return check_prompts(opts.prompts, system=opts.system)


def distill(teacher: Teacher, opts: DistillOptions, progress: Optional[Progress] = None) -> DistillResult:
    tick = progress_or_silent(progress)
    total = check_distill(opts)
    start = time.perf_counter()

    def key(row: dict) -> Optional[str]:
        meta = row.get("meta")
        return f"{meta['prompt_id']}#{meta.get('sample', 0)}" if isinstance(meta, dict) and "prompt_id" in meta \
            else None

    res = DistillResult(out=opts.out, teacher=teacher.name, prompts=total, duplicates=0, rows_before=0,
                        rows_written=0, failed=0, empty=0, tokens=0, elapsed_s=0.0)
    same_job = check_same_job(opts.out, "distill", {"teacher": teacher.name})
    with ResumableOutput(opts.out, key, overwrite=opts.overwrite, on_row=same_job) as out:
        res.rows_before, res.dropped_bytes = out.rows_before, out.dropped_bytes
        pending: list[tuple[PromptRow, int]] = []  # (prompt, sample index) still to generate
        finished = 0  # prompt rows handled, for the progress bar

        def counts() -> dict[str, float]:
            return {"rows": res.rows_before + res.rows_written, "failed": res.failed, "empty": res.empty,
                    "retries": getattr(teacher, "retries_done", 0)}

        def flush() -> None:
            nonlocal pending, finished
            if not pending:
                return
            completions = teacher.complete([p.messages for p, _ in pending], opts.sampling)
            rows = []
            for (p, sample), c in zip(pending, completions):
                if c.error is not None:
                    res.failed += 1
                    if len(res.errors) < MAX_ERRORS_KEPT:
                        res.errors.append(f"{p.source}: {c.error}")
                elif not c.text.strip():
                    res.empty += 1
                else:
                    rows.append(distilled_row(p, sample, c, teacher.name, opts.sampling))
                res.tokens += c.tokens
            out.append(rows)
            res.rows_written += len(rows)
            finished += len({p.id for p, _ in pending})
            pending = []
            tick(Tick("distill", finished + res.duplicates, total, counts()))

        tick(Tick("distill", 0, total, counts()))
        per_call = max(opts.batch_size, getattr(teacher, "answers_per_call", 0))  # a local model refills rows

        def count_duplicate() -> None:
            res.duplicates += 1

        for p in unique_prompts(opts.prompts, count_duplicate, system=opts.system):
            todo = [s for s in range(opts.k) if f"{p.id}#{s}" not in out.done]
            if not todo:
                finished += 1
                continue
            pending += [(p, s) for s in todo]
            if len(pending) >= per_call:
                flush()
        flush()
        tick(Tick("distill", total, total, counts()))
    res.retries = getattr(teacher, "retries_done", 0)
    res.elapsed_s = time.perf_counter() - start
    return res


def distilled_row(p: PromptRow, sample: int, c: Completion, teacher: str, sampling: Sampling) -> dict:
    meta = {"step": "distill", "prompt_id": p.id, "source": p.source, "sample": sample, "teacher": teacher,
            "sampling": sampling.to_dict(), "finish_reason": c.finish_reason, "tokens": c.tokens}
    if p.reference is not None:
        meta["reference"] = p.reference
    meta.update(created=now_iso(), mlxsft=__version__)
    return {"messages": p.messages + [{"role": "assistant", "content": c.text}], "meta": meta}
