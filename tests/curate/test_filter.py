"""mlxsft data filter: each step removes exactly the planted rows, kept rows are copied byte for byte, the report
counts, a re-run is a no-op, and --select keeps the planted families covered."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mlxsft.curate.filtering import STEPS, FilterOptions, filter_file
from mlxsft.curate.quality import QualityOptions
from mlxsft.errors import ConfigError
from tests.curate.conftest import read_jsonl
from tests.curate.test_dedup import change_words, paragraphs
from tests.curate.test_diversity import families

ENV = dict(os.environ, MLXSFT_NO_BLAS_REEXEC="1")


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def planted_dataset(path):
    """20 good rows (three formats) and one or two planted rows for every removal step; returns expected counts."""
    answers = paragraphs(20, words=30, seed=7)
    good = [chat(f"Tell me about topic {i}.", a) for i, a in enumerate(answers[:18])]
    good.append({"prompt": "Summarise topic 18.", "completion": answers[18]})
    good.append({"instruction": "Describe topic 19.", "output": answers[19]})
    lines = [json.dumps(r) for r in good]
    planted = {
        "invalid": ['{"messages": [{"role": "user", "content": "no answer"}]}', "{not json"],
        "too_short": [json.dumps(chat("Short?", "Yes"))],
        "too_long": [json.dumps(chat("Long?", " ".join(paragraphs(1, words=250, seed=9))))],
        "garbage": [json.dumps(chat("Garbled?", "Caf\ufffd \ufffd\ufffd au lait"))],
        "repetition": [json.dumps(chat("Loop?", "I will say it again. " * 12))],
        "refusal": [json.dumps(chat("Help?", "I'm sorry, but I can't help with that request."))],
        "exact_dup": [json.dumps(chat("tell me about TOPIC 3", answers[3].upper())),
                      json.dumps(chat("Tell me about topic 5!", "  " + answers[5] + " "))],
        "near_dup": [json.dumps(chat("Tell me about topic 8.", change_words(answers[8], 1, seed=1))),
                     json.dumps(chat("Tell me about topic 9.", change_words(answers[9], 1, seed=2)))],
    }
    # interleave: planted rows after the good rows they repeat
    for reason, rows in planted.items():
        lines += rows
    path.write_text("\n".join(lines) + "\n")
    return good, {reason: len(rows) for reason, rows in planted.items()}


def options(tmp_path, **kw) -> FilterOptions:
    return FilterOptions(inp=tmp_path / "in.jsonl", out=tmp_path / "out.jsonl", rejects=tmp_path / "rejects.jsonl",
                         quality=QualityOptions(min_tokens=3, max_tokens=200), **kw)


def test_each_step_removes_exactly_the_planted_rows(tmp_path):
    good, expected = planted_dataset(tmp_path / "in.jsonl")
    report = filter_file(options(tmp_path))
    assert report.removed == {s: expected.get(s, 0) for s in STEPS}
    assert (report.rows_in, report.rows_out) == (20 + sum(expected.values()), 20)
    # kept rows: the good ones, in order, byte for byte
    in_lines = (tmp_path / "in.jsonl").read_text().splitlines()
    assert (tmp_path / "out.jsonl").read_text().splitlines() == in_lines[:20]
    rejects = read_jsonl(tmp_path / "rejects.jsonl")
    assert sorted(r["reason"] for r in rejects) == sorted(r for r, n in expected.items() for _ in range(n))
    near = [r for r in rejects if r["reason"] == "near_dup"]
    assert near[0]["detail"] == f"near-duplicate of {tmp_path / 'in.jsonl'}:9"
    assert next(r for r in rejects if r["reason"] == "invalid" and "row" in r and r["row"] == "{not json")
    saved = json.loads((tmp_path / "out.report.json").read_text())
    assert saved["removed"] == report.removed and saved["rows_out"] == 20 and len(saved["fingerprint"]) == 64


def test_a_rerun_is_a_no_op_and_other_options_need_overwrite(tmp_path):
    planted_dataset(tmp_path / "in.jsonl")
    first = filter_file(options(tmp_path))
    before = (tmp_path / "out.jsonl").stat().st_mtime_ns
    again = filter_file(options(tmp_path))
    assert again.up_to_date and again.removed == first.removed
    assert (tmp_path / "out.jsonl").stat().st_mtime_ns == before
    with pytest.raises(ConfigError, match="exists, and was not made from this input with these options"):
        filter_file(options(tmp_path, near_dup=0))
    third = filter_file(options(tmp_path, near_dup=0, overwrite=True))
    assert third.removed["near_dup"] == 0 and third.rows_out == 22


def test_an_output_of_older_rules_is_not_up_to_date(tmp_path, monkeypatch):
    import mlxsft.curate.filtering as filtering

    planted_dataset(tmp_path / "in.jsonl")
    filter_file(options(tmp_path))
    monkeypatch.setattr(filtering, "RULES", filtering.RULES + 1)  # as if the rules changed since
    with pytest.raises(ConfigError, match="was not made from this input with these options"):
        filter_file(options(tmp_path))
    with open(tmp_path / "in.jsonl", "a") as f:  # new input rows: the output is out of date
        f.write(json.dumps(chat("New?", "A new and different answer about gardens.")) + "\n")
    with pytest.raises(ConfigError, match="exists"):
        filter_file(options(tmp_path, near_dup=0))


def test_dedup_on_prompt_or_response(tmp_path):
    rows = [chat("Same question?", "First answer about rivers."), chat("Same question?", "Another about clouds."),
            chat("Other question?", "First answer about rivers.")]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    by = {}
    for on in ("row", "prompt", "response"):
        opts = FilterOptions(inp=tmp_path / "in.jsonl", out=tmp_path / f"{on}.jsonl", dedup_on=on)
        by[on] = filter_file(opts).rows_out
    assert by == {"row": 3, "prompt": 2, "response": 2}


def test_select_keeps_n_rows_covering_the_planted_families(tmp_path):
    texts, labels = families()
    rows = [chat(t, f"Answer number {i} is about {labels[i]} and mentions item {i}.") for i, t in enumerate(texts)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = filter_file(FilterOptions(inp=tmp_path / "in.jsonl", out=tmp_path / "out.jsonl", select=5,
                                       embedder="tfidf", rejects=tmp_path / "rej.jsonl"))
    kept = read_jsonl(tmp_path / "out.jsonl")
    assert report.rows_out == 5 and report.removed["not_selected"] == 45 and report.embedder == "tfidf"
    assert {labels[texts.index(r["messages"][0]["content"])] for r in kept} == set(labels)
    rej = read_jsonl(tmp_path / "rej.jsonl")
    assert len(rej) == 45 and rej[0]["source"].startswith(f"{tmp_path / 'in.jsonl'}:")


def test_cli_filter_prints_the_table_and_writes_the_report(tmp_path):
    _, expected = planted_dataset(tmp_path / "in.jsonl")
    r = subprocess.run([sys.executable, "-m", "mlxsft", "data", "filter", "--in", str(tmp_path / "in.jsonl"),
                        "--out", str(tmp_path / "out.jsonl"), "--min-tokens", "3", "--max-tokens", "200",
                        "--report", str(tmp_path / "r.json")], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "near dup" in r.stdout and "refusal" in r.stdout and "output" in r.stdout
    assert json.loads((tmp_path / "r.json").read_text())["removed"]["near_dup"] == expected["near_dup"]
    again = subprocess.run([sys.executable, "-m", "mlxsft", "data", "filter", "--in", str(tmp_path / "in.jsonl"),
                            "--out", str(tmp_path / "out.jsonl"), "--min-tokens", "3", "--max-tokens", "200",
                            "--report", str(tmp_path / "r.json"), "--json"],
                           capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["up_to_date"] is True


@pytest.mark.parametrize("args, message", [
    (["--in", "{tmp}/missing.jsonl", "--out", "{tmp}/o.jsonl"], "missing.jsonl: file not found"),
    (["--in", "{tmp}/in.jsonl", "--out", "{tmp}/in.jsonl"], "must be different files"),
    (["--in", "{tmp}/in.jsonl", "--out", "{tmp}/o.jsonl", "--min-tokens", "9", "--max-tokens", "3"],
     "--max-tokens 3 is below --min-tokens 9"),
])
def test_cli_filter_bad_input_is_one_line(tmp_path, args, message):
    (tmp_path / "in.jsonl").write_text(json.dumps(chat("q", "a")) + "\n")
    r = subprocess.run([sys.executable, "-m", "mlxsft", "data", "filter", *[a.format(tmp=tmp_path) for a in args]],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_filter_runs_without_the_openblas_preload_that_slows_torch(tmp_path, monkeypatch):
    """filter's MiniLM embedder is torch (~4x slower with OpenBLAS preloaded): it never asks for the re-exec;
    distill and best-of-k run local models on MLX and ask for it before anything else."""
    from click.testing import CliRunner

    import mlxsft.machine
    from mlxsft.cli.main import cli

    calls = []
    monkeypatch.setattr(mlxsft.machine, "ensure_fast_blas", lambda argv=None: calls.append(argv))
    (tmp_path / "in.jsonl").write_text(json.dumps(chat("q", "a")) + "\n" + json.dumps(chat("r", "b")) + "\n")
    r = CliRunner().invoke(cli, ["data", "filter", "--in", str(tmp_path / "in.jsonl"), "--out",
                                 str(tmp_path / "o.jsonl"), "--select", "1", "--embedder", "tfidf"])
    assert r.exit_code == 0, r.output
    assert len(read_jsonl(tmp_path / "o.jsonl")) == 1 and calls == []
    # a missing prompts file fails right after the BLAS choice, before any model is loaded
    missing, out = str(tmp_path / "missing.jsonl"), str(tmp_path / "d.jsonl")
    for args in (["distill", "--teacher", "smollm2-135m-instruct"],
                 ["best-of-k", "--model", "smollm2-135m-instruct", "--scorer", "reference"]):
        r = CliRunner().invoke(cli, ["data", *args, "--prompts", missing, "--out", out])
        assert r.exit_code != 0 and "missing.jsonl" in str(r.exception)
    assert calls == [None, None] and not (tmp_path / "d.jsonl").exists()


def test_worker_processes_give_the_same_output_rejects_and_report(tmp_path, monkeypatch):
    import mlxsft.curate.scan as scan

    planted_dataset(tmp_path / "in.jsonl")
    one = filter_file(options(tmp_path, workers=1))
    monkeypatch.setattr(scan, "CHUNK_ROWS", 3)  # 31 lines: 11 chunks shared by the two workers, results in order
    two = filter_file(FilterOptions(inp=tmp_path / "in.jsonl", out=tmp_path / "out2.jsonl",
                                    rejects=tmp_path / "rejects2.jsonl", workers=2,
                                    quality=QualityOptions(min_tokens=3, max_tokens=200)))
    assert two.removed == one.removed and two.rows_out == one.rows_out == 20
    assert two.fingerprint == one.fingerprint  # the number of workers is not an option that changes the output
    assert (tmp_path / "out2.jsonl").read_bytes() == (tmp_path / "out.jsonl").read_bytes()
    assert (tmp_path / "rejects2.jsonl").read_bytes() == (tmp_path / "rejects.jsonl").read_bytes()


@pytest.mark.parametrize("n", [5, 60])
def test_select_embeds_each_distinct_prompt_once_and_picks_what_k_center_over_every_row_picks(tmp_path, n):
    """Three answers per prompt (as distill --k 3 writes): k-center among the 50 distinct prompts, then (N = 60)
    the next rows in order, gives the rows the traversal over all 150 rows gives."""
    from mlxsft.curate.diversity import HashedTfidf, k_center

    texts, _ = families()
    prompts = [t for t in texts for _ in range(3)]
    rows = [chat(p, f"Answer {i}: {' '.join(paragraphs(1, words=12, seed=i)[0].split())}")
            for i, p in enumerate(prompts)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = filter_file(FilterOptions(inp=tmp_path / "in.jsonl", out=tmp_path / "out.jsonl", select=n,
                                       embedder="tfidf", dedup=False, near_dup=0))
    e = HashedTfidf(seed=0)
    e.fit(prompts)
    expected = sorted(k_center(e.embed(prompts), n))
    kept = read_jsonl(tmp_path / "out.jsonl")
    assert report.rows_out == n and [rows.index(r) for r in kept] == expected
