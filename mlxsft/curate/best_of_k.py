"""Best-of-K (rejection sampling): sample K answers per prompt, score each, keep the best one.

    gen = make_teacher("smollm2-135m-instruct")
    result = best_of_k(gen, make_scorer("reference"),
                       BestOfKOptions(prompts=Path("math.jsonl"), out=Path("best.jsonl"), k=4, threshold=1.0))
    result.acceptance_rate, result.best.median

With ``threshold`` a prompt whose best answer scores below it is rejected: its row goes to the rejected file
(``--rejected``, default ``OUT`` with ``.rejected.jsonl``) rather than ``--out``, so it can be inspected and a
re-run skips it too. Row ``meta`` records the generator, scorer, sampling, every candidate's score and which won::

    {"step": "best-of-k", "prompt_id": ..., "source": "math.jsonl:4", "model": ..., "scorer": "reference",
     "k": 4, "sampling": {...}, "scores": [0.0, 1.0, 0.5, 1.0], "best": 1, "score": 1.0, "threshold": 1.0,
     "accepted": true, "reference": "42", "finish_reason": "stop", "tokens": 12, "created": ..., "mlxsft": ...}

The acceptance rate and score distributions cover every row in both files, so a resumed run reports the whole job.
"""

from __future__ import annotations

import math
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mlxsft import __version__
from mlxsft.curate.events import Progress, Tick, progress_or_silent
from mlxsft.curate.jsonl import ResumableOutput, refuse_same_file
from mlxsft.curate.prompts import PromptRow, check_prompts, unique_prompts
from mlxsft.curate.provenance import check_same_job, now_iso
from mlxsft.curate.scorers import Scorer
from mlxsft.curate.stats import ScoreSummary, finite_or_none, summarize
from mlxsft.curate.teachers import Completion, Sampling, Teacher
from mlxsft.errors import ConfigError


@dataclass
class BestOfKOptions:
    prompts: Path
    out: Path
    k: int = 4
    sampling: Sampling = field(default_factory=lambda: Sampling(temp=0.8))
    threshold: Optional[float] = None
    rejected: Optional[Path] = None  # default: OUT with .rejected.jsonl
    system: Optional[str] = None
    batch_size: int = 16  # candidates per batch (whole prompts); a local model gathers its answers_per_call
    overwrite: bool = False

    @property
    def rejected_path(self) -> Path:
        if self.rejected is not None:
            return self.rejected
        name = self.out.name[: -len(self.out.suffix)] if self.out.suffix else self.out.name
        return self.out.with_name(name + ".rejected.jsonl")


@dataclass
class BestOfKResult:
    out: Path
    rejected_path: Path
    model: str
    scorer: str
    k: int
    threshold: Optional[float]
    prompts: int  # prompt rows in the file
    accepted: int  # rows in --out (this run and earlier ones)
    rejected: int  # rows in the rejected file
    resumed: int  # prompts already done before this run
    failed: int  # prompts none of whose K candidates came back (endpoint refusals)
    duplicates: int
    best: ScoreSummary  # the winning score of each prompt
    candidates: ScoreSummary  # every candidate's score
    elapsed_s: float
    tokens: int = 0
    dropped_bytes: int = 0
    retries: int = 0

    @property
    def acceptance_rate(self) -> Optional[float]:
        n = self.accepted + self.rejected
        return self.accepted / n if n else None

    def to_dict(self) -> dict:
        return {"out": str(self.out), "rejected_file": str(self.rejected_path), "model": self.model,
                "scorer": self.scorer, "k": self.k, "threshold": self.threshold, "prompts": self.prompts,
                "accepted": self.accepted, "rejected": self.rejected, "acceptance_rate": self.acceptance_rate,
                "resumed": self.resumed, "failed": self.failed, "duplicates": self.duplicates,
                "best_scores": self.best.to_dict(), "candidate_scores": self.candidates.to_dict(),
                "tokens": self.tokens, "elapsed_s": self.elapsed_s, "retries": self.retries}


def pick_best(scores: list[Optional[float]]) -> int:
    """Index of the highest score (the first on ties); None scores lose to any number."""
    keyed = [(s if s is not None and math.isfinite(s) else -math.inf) for s in scores]
    return max(range(len(keyed)), key=lambda i: (keyed[i], -i))


def check_best_of_k(opts: BestOfKOptions, need_reference: bool) -> int:
    """Check the options and every prompt row before any model is loaded; returns the number of prompt rows."""
    if opts.k < 1:
        raise ConfigError(f"--k must be at least 1, got {opts.k}")
    if opts.k > 1 and opts.sampling.temp <= 0:
        raise ConfigError(f"--k {opts.k} with --temp 0 samples the same answer {opts.k} times; set --temp > 0")
    refuse_same_file({"--prompts": opts.prompts, "--out": opts.out, "--rejected": opts.rejected_path})
    return check_prompts(opts.prompts, system=opts.system, need_reference=need_reference)


def best_of_k(generator: Teacher, scorer: Scorer, opts: BestOfKOptions,
              progress: Optional[Progress] = None) -> BestOfKResult:
    tick = progress_or_silent(progress)
    total = check_best_of_k(opts, need_reference=scorer.needs_reference)
    start = time.perf_counter()
    best_scores: list[Optional[float]] = []
    all_scores: list[Optional[float]] = []

    def key(row: dict) -> Optional[str]:
        meta = row.get("meta")
        return str(meta["prompt_id"]) if isinstance(meta, dict) and "prompt_id" in meta else None

    expected = {"model": generator.name, "scorer": scorer.name, "k": opts.k}

    def read_back(path: Path):
        check = check_same_job(path, "best-of-k", expected)

        def on_row(line: int, row: dict) -> None:
            check(line, row)
            best_scores.append(row["meta"].get("score"))
            all_scores.extend(row["meta"].get("scores") or [])

        return on_row

    res = BestOfKResult(out=opts.out, rejected_path=opts.rejected_path, model=generator.name, scorer=scorer.name,
                        k=opts.k, threshold=opts.threshold, prompts=total, accepted=0, rejected=0, resumed=0,
                        failed=0, duplicates=0, best=ScoreSummary(), candidates=ScoreSummary(), elapsed_s=0.0)
    kept = ResumableOutput(opts.out, key, overwrite=opts.overwrite, on_row=read_back(opts.out))
    dropped = ResumableOutput(opts.rejected_path, key, overwrite=opts.overwrite, on_row=read_back(opts.rejected_path))
    with closing(kept), closing(dropped):
        kept.open()  # both files are read and checked before either is mended or emptied
        dropped.open()
        kept.prepare()
        dropped.prepare()
        res.accepted, res.rejected = kept.rows_before, dropped.rows_before
        res.dropped_bytes = kept.dropped_bytes + dropped.dropped_bytes
        pending: list[PromptRow] = []
        finished = 0

        def counts() -> dict[str, float]:
            n = res.accepted + res.rejected
            return {"accepted": res.accepted, "rejected": res.rejected, "failed": res.failed,
                    "acceptance": res.accepted / n if n else 0.0, "retries": getattr(generator, "retries_done", 0)}

        def flush() -> None:
            nonlocal pending, finished
            if not pending:
                return
            convs = [p.messages for p in pending for _ in range(opts.k)]
            completions = generator.complete(convs, opts.sampling)
            groups = [completions[i * opts.k:(i + 1) * opts.k] for i in range(len(pending))]
            items = [(p, c.text) for p, group in zip(pending, groups) for c in group if c.error is None]
            scores = iter(scorer.score(items))
            keep_rows, drop_rows = [], []
            for p, group in zip(pending, groups):
                cands = [c for c in group if c.error is None]
                res.tokens += sum(c.tokens for c in group)
                if not cands:
                    res.failed += 1
                    continue
                cand_scores = [finite_or_none(next(scores)) for _ in cands]
                best = pick_best(cand_scores)
                accepted = (bool(cands[best].text.strip()) and
                            (opts.threshold is None or (cand_scores[best] is not None
                                                        and cand_scores[best] >= opts.threshold)))
                row = best_row(p, cands[best], best, cand_scores, accepted, generator.name, scorer.name, opts)
                (keep_rows if accepted else drop_rows).append(row)
                best_scores.append(cand_scores[best])
                all_scores.extend(cand_scores)
            kept.append(keep_rows)
            dropped.append(drop_rows)
            res.accepted += len(keep_rows)
            res.rejected += len(drop_rows)
            finished += len(pending)
            pending = []
            tick(Tick("best-of-k", finished + res.duplicates, total, counts()))

        tick(Tick("best-of-k", 0, total, counts()))
        per_call = max(opts.batch_size, getattr(generator, "answers_per_call", 0))  # a local model refills rows

        def count_duplicate() -> None:
            res.duplicates += 1

        for p in unique_prompts(opts.prompts, count_duplicate, system=opts.system):
            if p.id in kept.done or p.id in dropped.done:
                res.resumed += 1
                finished += 1
                continue
            pending.append(p)
            if len(pending) * opts.k >= per_call:
                flush()
        flush()
        tick(Tick("best-of-k", total, total, counts()))
    res.best, res.candidates = summarize(best_scores), summarize(all_scores)
    res.retries = getattr(generator, "retries_done", 0)
    res.elapsed_s = time.perf_counter() - start
    return res


def best_row(p: PromptRow, c: Completion, best: int, scores: list[Optional[float]], accepted: bool, model: str,
             scorer: str, opts: BestOfKOptions) -> dict:
    meta = {"step": "best-of-k", "prompt_id": p.id, "source": p.source, "model": model, "scorer": scorer,
            "k": opts.k, "sampling": opts.sampling.to_dict(), "scores": scores, "best": best, "score": scores[best],
            "threshold": opts.threshold, "accepted": accepted}
    if p.reference is not None:
        meta["reference"] = p.reference
    meta.update(finish_reason=c.finish_reason, tokens=c.tokens, created=now_iso(), mlxsft=__version__)
    return {"messages": p.messages + [{"role": "assistant", "content": c.text}], "meta": meta}
