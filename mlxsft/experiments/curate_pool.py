"""Curate a pool with mlxsft's own pipeline, and score the curation against the pool's planted labels.

    run = curate(Path("pool.jsonl"), Path("curation/"), CurationSpec(select=300))
    run.curated                     # curation/curated.jsonl: N rows
    run.removed                     # step -> ids of the rows it removed
    report = filter_report(pool.labels, run.removed, run.kept)   # per step and per defect: precision, recall

The pipeline, in order (a row leaves at the first step that removes it):
1. ``mlxsft data filter`` without ``--select`` (``curate.filtering.filter_file``): quality checks (too short or
   long, garbage, repetition loops, refusals), then exact and near (MinHash) dedup.
2. best-of-k with the reference scorer (``curate.scorers.make_scorer``, ``curate.best_of_k.pick_best``), where a
   row has a reference: the pool's answers to one prompt are its K candidates; the best is kept when it scores
   at least ``threshold``, the others leave as ``not_best``, a best below the threshold as ``reference``. Rows
   without a reference pass.
3. ``mlxsft data filter --select N``: N rows by prompt diversity (``curate.diversity``, k-center).

The score of the curation: for each step, how many rows of each planted label it removed, and its precision
(the share of what it removed that was defective); for each defect, its recall (the share of its rows removed)
and how many got through into the curated rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mlxsft.curate.events import Progress

SELECTION = "not_selected"
REFERENCE_STEPS = ("reference", "not_best")


@dataclass
class CurationSpec:
    select: int  # N: rows the curation keeps
    scorer: str = "reference:exact"  # the answer must be the reference: "The year is 1987." is not "1987"
    threshold: float = 1.0
    near_dup: float = 0.8  # Jaccard threshold of near dedup (data filter's default)
    embedder: str = "auto"  # diversity embeddings (data filter's default: MiniLM if installed, else TF-IDF)
    seed: int = 0


@dataclass
class CurationRun:
    curated: Path
    removed: dict[str, list[str]]  # step -> row ids, in the order the steps ran
    kept: list[str]  # ids of the curated rows
    filter_reports: list[dict[str, Any]] = field(default_factory=list)  # the two data filter reports


def _rejected_ids(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                entry = json.loads(line)
                out.setdefault(entry["reason"], []).append(str(entry["row"].get("id")))
    return out


def _ids(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [str(json.loads(line).get("id")) for line in f if line.strip()]


def best_of_pool(inp: Path, out: Path, scorer_spec: str, threshold: float) -> dict[str, list[str]]:
    """Step 2: per prompt, the pool's answers are the K candidates of best-of-k; writes the rows kept (input
    order, bytes unchanged) and returns the ids removed as ``reference`` (best below threshold) and ``not_best``."""
    from mlxsft.curate.best_of_k import pick_best
    from mlxsft.curate.prompts import prompt_id, to_prompt
    from mlxsft.curate.scorers import make_scorer
    from mlxsft.files import atomic_write_bytes

    scorer = make_scorer(scorer_spec)
    lines = [raw for raw in inp.read_bytes().splitlines(keepends=True) if raw.strip()]
    groups: dict[str, list[tuple[int, Any, str]]] = {}
    keep = [True] * len(lines)
    for i, raw in enumerate(lines):
        row = json.loads(raw)
        p = to_prompt(row, str(inp), i + 1)
        if p.reference is not None:
            groups.setdefault(prompt_id(p.messages), []).append((i, p, row["messages"][-1]["content"]))
    removed: dict[str, list[str]] = {"reference": [], "not_best": []}
    for members in groups.values():
        scores = scorer.score([(p, answer) for _, p, answer in members])
        best = pick_best(scores)
        for j, (i, p, _) in enumerate(members):
            if j != best:
                keep[i] = False
                removed["not_best"].append(str(p.row.get("id")))
            elif scores[j] is None or scores[j] < threshold:
                keep[i] = False
                removed["reference"].append(str(p.row.get("id")))
    scorer.close()
    atomic_write_bytes(out, b"".join(raw if raw.endswith(b"\n") else raw + b"\n"
                                     for raw, k in zip(lines, keep) if k))
    return removed


def curate(pool: Path, folder: Path, spec: CurationSpec, progress: Optional[Progress] = None) -> CurationRun:
    """The three steps on ``pool``, their files in ``folder``; the curated rows are ``folder/curated.jsonl``."""
    from mlxsft.curate.filtering import FilterOptions, filter_file

    folder.mkdir(parents=True, exist_ok=True)
    removed: dict[str, list[str]] = {}
    filtered = folder / "filtered.jsonl"
    first = filter_file(FilterOptions(inp=pool, out=filtered, rejects=folder / "filtered.rejects.jsonl",
                                      near_dup=spec.near_dup, seed=spec.seed, overwrite=True), progress)
    removed.update(_rejected_ids(folder / "filtered.rejects.jsonl"))
    scored = folder / "best.jsonl"
    removed.update(best_of_pool(filtered, scored, spec.scorer, spec.threshold))
    curated = folder / "curated.jsonl"
    second = filter_file(FilterOptions(inp=scored, out=curated, rejects=folder / "selected.rejects.jsonl",
                                       dedup=False, near_dup=0.0, select=spec.select, embedder=spec.embedder,
                                       seed=spec.seed, overwrite=True), progress)
    removed.update(_rejected_ids(folder / "selected.rejects.jsonl"))
    return CurationRun(curated=curated, removed=removed, kept=_ids(curated),
                       filter_reports=[first.to_dict(), second.to_dict()])


def filter_report(labels: dict[str, str], removed: dict[str, list[str]], kept: list[str]) -> dict[str, Any]:
    """What each step removed per planted label, with its precision; per defect, recall and what got through.

    ``labels``: row id -> "clean" or a defect. Precision of a step: the share of the rows it removed that were
    defective (None if it removed none). Recall of a defect: the share of its rows that some step removed;
    ``filter_recall`` counts only the filtering steps (everything before the diversity selection), which remove
    rows for being bad rather than to reach N. ``overall`` gives both for all defects together.
    """
    from mlxsft.experiments.pool import LABELS

    def tally(ids: list[str]) -> dict[str, int]:
        counts = {label: 0 for label in LABELS}
        for i in ids:
            counts[labels[i]] += 1
        return counts

    def share(part: int, whole: int) -> Optional[float]:
        return part / whole if whole else None

    steps = {}
    for step, ids in removed.items():
        by_label = tally(ids)
        defective = len(ids) - by_label["clean"]
        steps[step] = {"removed": len(ids), "by_label": by_label, "precision": share(defective, len(ids))}
    planted = tally(list(labels))
    through = tally(kept)
    filtered_out = [i for step, ids in removed.items() if step != SELECTION for i in ids]
    removed_by_filters = tally(filtered_out)
    removed_all = tally([i for ids in removed.values() for i in ids])
    defects = {}
    for label in LABELS[1:]:
        defects[label] = {"planted": planted[label], "removed": removed_all[label],
                          "recall": share(removed_all[label], planted[label]),
                          "filter_recall": share(removed_by_filters[label], planted[label]),
                          "kept": through[label],
                          "by_step": {step: s["by_label"][label] for step, s in steps.items()}}
    n_defects = sum(planted[d] for d in LABELS[1:])
    def overall(counts: dict[str, int]) -> dict[str, Optional[float]]:
        total = sum(counts.values())
        defective = total - counts["clean"]
        return {"removed": total, "precision": share(defective, total), "recall": share(defective, n_defects)}

    return {"rows_in": len(labels), "rows_out": len(kept), "planted": planted, "kept": through, "steps": steps,
            "defects": defects, "filters": overall(removed_by_filters), "overall": overall(removed_all),
            "kept_defective": share(len(kept) - through["clean"], len(kept))}
