"""Curating SFT data: distil a teacher's answers, keep the best of K samples, filter a large set down.

    mlxsft data distill   --teacher smollm2-135m-instruct --prompts prompts.jsonl --out distilled.jsonl
    mlxsft data best-of-k --model smollm2-135m-instruct --prompts math.jsonl --k 4 --scorer reference --out best.jsonl
    mlxsft data filter    --in distilled.jsonl --out clean.jsonl --select 1000

All three read and write JSON Lines in the ``messages`` format, one row at a time (what stays in memory is an id
or a hash per row, never the rows), report progress through a callback (the CLI draws it, see ``mlxsft/cli/ui/curate.py``) and record where
every row came from in a ``meta`` object that training ignores. ``distill`` and ``best-of-k`` append finished rows
to ``--out`` (flushed and fsynced per batch); re-running the same command skips the prompts already done, after
dropping a half-written last line left by a crash. ``filter`` writes its output atomically and a re-run with the
same input and options is a no-op.

Modules: ``prompts`` (prompt rows), ``jsonl`` (streaming reads, durable appends, resume), ``teachers`` (a local
MLX model or an OpenAI-compatible endpoint), ``distill``, ``scorers``, ``best_of_k``, ``quality`` (heuristics),
``dedup`` (exact and MinHash LSH), ``diversity`` (embeddings and selection), ``filtering`` (the filter pipeline),
``stats`` (score summaries), ``provenance`` (row ``meta``, same-job check on resume), ``events`` (the progress
callback type).
"""
