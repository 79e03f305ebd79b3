"""``distill`` / ``best-of-k`` never damage a file they did not write: ``--out`` is read and checked before a byte
changes, only an mlxsft output is mended (a torn last line cut) or emptied (``--overwrite``), and ``--out``,
``--rejected`` and ``--report`` can never be an input (same path, ``..``, a symlink or a hard link)."""

from __future__ import annotations

import os
import re

import pytest

from mlxsft.curate.best_of_k import BestOfKOptions, best_of_k
from mlxsft.curate.distill import DistillOptions, distill
from mlxsft.curate.scorers import ReferenceScorer
from mlxsft.curate.teachers import Sampling
from mlxsft.errors import ConfigError
from tests.curate.conftest import ScriptedTeacher, read_jsonl, write_jsonl

# a user's own training file: two rows, no newline after the last (editors and json.dump often leave it so)
USERS = (b'{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\n'
         b'{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}')


@pytest.fixture
def tree(tmp_path):
    """project/{data/train.jsonl (the user's), prompts/math.jsonl, out/}"""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "train.jsonl").write_bytes(USERS)
    write_jsonl(root / "prompts" / "math.jsonl", [{"id": f"p{i}", "question": f"What is {i} + 1?",
                                                   "reference": str(i + 1)} for i in range(3)])
    (root / "out").mkdir()
    return root


def answer(q, n):
    return q.split("What is ")[1].split(" + ")[0] + "1"


def test_a_users_file_as_distill_out_keeps_every_byte(tree):
    users = tree / "data" / "train.jsonl"
    for overwrite, message in ((False, r"train.jsonl:1: this output was written by another job \(a row without "
                                       r"mlxsft's meta\)"),
                               (True, r"train.jsonl:1: --overwrite empties only an output written by mlxsft")):
        teacher = ScriptedTeacher(answer)
        with pytest.raises(ConfigError, match=message) as e:
            distill(teacher, DistillOptions(prompts=tree / "prompts" / "math.jsonl", out=users, overwrite=overwrite))
        assert e.value.hint == "use another --out"  # --overwrite would refuse a file mlxsft did not write
        assert users.read_bytes() == USERS and teacher.asked == {}


def test_a_users_file_as_best_of_k_out_or_rejected_keeps_every_byte(tree):
    users = tree / "data" / "train.jsonl"
    ours = tree / "out" / "best.jsonl"
    prompts = tree / "prompts" / "math.jsonl"
    best_of_k(ScriptedTeacher(answer), ReferenceScorer(), BestOfKOptions(prompts=prompts, out=ours, k=1))
    kept = ours.read_bytes()
    assert kept.count(b"\n") == 3
    for opts in (BestOfKOptions(prompts=prompts, out=users, k=1),
                 BestOfKOptions(prompts=prompts, out=users, k=1, overwrite=True),
                 BestOfKOptions(prompts=prompts, out=ours, rejected=users, k=1, overwrite=True)):
        gen = ScriptedTeacher(answer)
        with pytest.raises(ConfigError, match="train.jsonl:1: "):
            best_of_k(gen, ReferenceScorer(), opts)
        assert users.read_bytes() == USERS and gen.asked == {}
    # the last one refused the user's --rejected before it emptied --out (an mlxsft output, so emptiable)
    assert ours.read_bytes() == kept


def test_only_an_mlxsft_output_is_mended_or_emptied(tree):
    prompts, out = tree / "prompts" / "math.jsonl", tree / "out" / "distilled.jsonl"
    opts = DistillOptions(prompts=prompts, out=out)
    distill(ScriptedTeacher(answer, name="t"), opts)
    whole = out.read_bytes()
    out.write_bytes(whole[:-1])  # a crash between the last row and its newline: the row is whole, keep it
    again = ScriptedTeacher(answer, name="t")
    res = distill(again, opts)
    assert again.asked == {} and res.rows_before == 3 and res.dropped_bytes == 0 and out.read_bytes() == whole
    first, second, third, _ = whole.split(b"\n")
    out.write_bytes(first + b"\n" + second + b"\n" + third[:25])  # a crash mid-write: cut, that prompt asked again
    res = distill(ScriptedTeacher(answer, name="t"), opts)
    assert (res.rows_before, res.dropped_bytes, res.rows_written, len(read_jsonl(out))) == (2, 25, 1, 3)
    res = distill(ScriptedTeacher(answer, name="other"), DistillOptions(prompts=prompts, out=out, overwrite=True))
    assert res.rows_before == 0 and res.rows_written == 3  # --overwrite empties an mlxsft output, of any job


def links(tree, target):
    """Other names for ``target``: the same path, one through '..', a symlink and a hard link."""
    out = tree / "out"
    (out / "sym.jsonl").symlink_to(target)
    os.link(target, out / "hard.jsonl")
    return [target, out / ".." / target.relative_to(tree), out / "sym.jsonl", out / "hard.jsonl"]


def test_distill_out_may_not_be_the_prompts_file(tree):
    prompts = tree / "prompts" / "math.jsonl"
    before = prompts.read_bytes()
    for name in links(tree, prompts):
        with pytest.raises(ConfigError, match=r"--prompts .*math.jsonl and --out .* are the same file"):
            distill(ScriptedTeacher(answer), DistillOptions(prompts=prompts, out=name, overwrite=True))
    assert prompts.read_bytes() == before


def test_best_of_k_out_and_rejected_may_not_be_the_prompts_file_or_each_other(tree):
    prompts = tree / "prompts" / "math.jsonl"
    before = prompts.read_bytes()
    for name in links(tree, prompts):
        for opts, flag in ((BestOfKOptions(prompts=prompts, out=name, k=1, overwrite=True), "--out"),
                           (BestOfKOptions(prompts=prompts, out=tree / "out" / "b.jsonl", rejected=name, k=1),
                            "--rejected")):
            with pytest.raises(ConfigError, match=rf"--prompts .*math.jsonl and {flag} .* are the same file"):
                best_of_k(ScriptedTeacher(answer), ReferenceScorer(), opts)
    assert prompts.read_bytes() == before
    out = tree / "out" / "b.jsonl"
    with pytest.raises(ConfigError, match=r"--out .*b.jsonl and --rejected .* are the same file"):
        best_of_k(ScriptedTeacher(answer), ReferenceScorer(),
                  BestOfKOptions(prompts=prompts, out=out, rejected=tree / "out" / "x" / ".." / "b.jsonl", k=1,
                                 sampling=Sampling(temp=0.8)))


def test_cli_refusals_are_one_line_and_touch_nothing(tree, monkeypatch, capsys):
    from mlxsft.cli.main import main

    monkeypatch.setenv("MLXSFT_NO_BLAS_REEXEC", "1")
    prompts, users = tree / "prompts" / "math.jsonl", tree / "data" / "train.jsonl"
    before = prompts.read_bytes()
    endpoint = "http://127.0.0.1:9/v1"  # never asked: every refusal comes before the first request
    runs = [(["data", "distill", "--teacher", endpoint, "--prompts", str(prompts), "--out", str(users),
              "--overwrite"], "--overwrite empties only an output written by mlxsft"),
            (["data", "distill", "--teacher", endpoint, "--prompts", str(prompts), "--out", str(prompts)],
             "are the same file"),
            (["data", "best-of-k", "--model", endpoint, "--scorer", "reference", "--k", "1", "--prompts",
              str(prompts), "--out", str(tree / "out" / "b.jsonl"), "--report", str(prompts)],
             "--prompts .*math.jsonl and --report .* are the same file")]
    for argv, message in runs:
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert e.value.code == 1 and len(errors) == 1 and "Traceback" not in err
        assert re.search(message, errors[0]), errors[0]
    assert prompts.read_bytes() == before and users.read_bytes() == USERS
