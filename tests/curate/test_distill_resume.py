"""distill with a scripted teacher: rows and provenance, batching, duplicates, and resuming after a Ctrl-C or a
crash that left half a line."""

from __future__ import annotations

import json

import pytest

from mlxsft.curate.distill import DistillOptions, distill
from mlxsft.curate.jsonl import ResumableOutput
from mlxsft.curate.teachers import Completion, Sampling
from mlxsft.data.load import load_conversations
from mlxsft.config import DataConfig
from mlxsft.errors import ConfigError, DataError, RunError
from tests.curate.conftest import ScriptedTeacher, read_jsonl, write_jsonl


def prompts(tmp_path, n=10):
    return write_jsonl(tmp_path / "prompts.jsonl", [{"id": f"p{i}", "question": f"Question {i}?"} for i in range(n)])


def echo(q, n):
    return f"Answer to {q} (sample {n})"


def test_rows_carry_the_answer_and_provenance_and_train_as_they_are(tmp_path):
    path = prompts(tmp_path, 5)
    teacher = ScriptedTeacher(echo, name="big-teacher")
    opts = DistillOptions(prompts=path, out=tmp_path / "out.jsonl", k=2, sampling=Sampling(temp=0.7, max_tokens=9),
                          system="Be brief.", batch_size=4)
    res = distill(teacher, opts)
    rows = read_jsonl(opts.out)
    assert (res.rows_written, res.rows_before, res.prompts, len(rows)) == (10, 0, 5, 10)
    assert teacher.batches == [4, 4, 2]  # whole prompts per batch: 2 samples each
    first = rows[0]
    assert first["messages"] == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Question 0?"},
                                 {"role": "assistant", "content": "Answer to Question 0? (sample 0)"}]
    meta = first["meta"]
    assert {k: meta[k] for k in ("step", "prompt_id", "source", "sample", "teacher", "finish_reason")} == \
        {"step": "distill", "prompt_id": "p0", "source": f"{path}:1", "sample": 0, "teacher": "big-teacher",
         "finish_reason": "stop"}
    assert meta["sampling"] == {"temp": 0.7, "top_p": 1.0, "max_tokens": 9, "seed": 0}
    assert [(r["meta"]["prompt_id"], r["meta"]["sample"]) for r in rows[:4]] == [("p0", 0), ("p0", 1), ("p1", 0),
                                                                                 ("p1", 1)]
    # the training data loader reads the output as it is (meta ignored)
    convs = load_conversations(str(opts.out), "train", DataConfig())
    assert len(convs) == 10 and convs[1].messages[-1]["content"] == "Answer to Question 0? (sample 1)"


def test_interrupted_run_resumes_without_redoing_or_duplicating_rows(tmp_path):
    path = prompts(tmp_path, 10)
    out = tmp_path / "out.jsonl"
    opts = DistillOptions(prompts=path, out=out, batch_size=3)
    with pytest.raises(KeyboardInterrupt):
        distill(ScriptedTeacher(echo, fail_after=2), opts)
    assert len(read_jsonl(out)) == 6  # two finished batches were saved
    # a crash in the middle of the next write leaves half a line
    with open(out, "ab") as f:
        f.write(b'{"messages": [{"role": "user", "content": "Quest')
    again = ScriptedTeacher(echo)
    res = distill(again, opts)
    assert res.rows_before == 6 and res.rows_written == 4 and res.dropped_bytes == 48
    assert sorted(again.asked) == [f"Question {i}?" for i in range(6, 10)]  # only the missing prompts
    rows = read_jsonl(out)
    assert [r["meta"]["prompt_id"] for r in rows] == [f"p{i}" for i in range(10)]
    assert out.read_bytes().endswith(b"\n")
    # a third run has nothing to do
    third = ScriptedTeacher(echo)
    assert distill(third, opts).rows_written == 0 and third.asked == {}


def test_duplicates_empty_answers_and_refusals(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "same"}, {"question": "same"}, {"question": "empty"},
                                              {"question": "refused"}, {"question": "fine"}])

    def answer(q, n):
        if q == "refused":
            return Completion("", finish_reason="error", error="HTTP 400: context too long")
        return "" if q == "empty" else f"ok {q}"

    res = distill(ScriptedTeacher(answer), DistillOptions(prompts=path, out=tmp_path / "o.jsonl"))
    assert (res.duplicates, res.empty, res.failed, res.rows_written) == (1, 1, 1, 2)
    assert res.errors == [f"{path}:4: HTTP 400: context too long"]
    # empty and refused prompts are not written, so a re-run tries them again
    again = ScriptedTeacher(lambda q, n: f"now {q}")
    res2 = distill(again, DistillOptions(prompts=path, out=tmp_path / "o.jsonl"))
    assert sorted(again.asked) == ["empty", "refused"] and res2.rows_written == 2


def test_resuming_someone_elses_output_or_with_bad_options_is_refused(tmp_path):
    path = prompts(tmp_path, 2)
    out = tmp_path / "o.jsonl"
    distill(ScriptedTeacher(echo, name="teacher-a"), DistillOptions(prompts=path, out=out))
    with pytest.raises(ConfigError, match=r"o.jsonl:1: this output was written by another job .*teacher-a") as e:
        distill(ScriptedTeacher(echo, name="teacher-b"), DistillOptions(prompts=path, out=out))
    assert "--overwrite" in e.value.hint  # an mlxsft output: --overwrite may start it again
    res = distill(ScriptedTeacher(echo, name="teacher-b"), DistillOptions(prompts=path, out=out, overwrite=True))
    assert res.rows_written == 2 and {r["meta"]["teacher"] for r in read_jsonl(out)} == {"teacher-b"}
    with pytest.raises(ConfigError, match="identical answers"):
        distill(ScriptedTeacher(echo), DistillOptions(prompts=path, out=tmp_path / "x.jsonl", k=3))
    assert not (tmp_path / "x.jsonl").exists()


def test_resumable_output_locks_and_reports_damage(tmp_path):
    out = tmp_path / "o.jsonl"
    key = lambda row: row.get("id")  # noqa: E731
    with ResumableOutput(out, key) as a:
        a.append([{"id": "1"}, {"id": "2"}])
        with pytest.raises(RunError, match="another mlxsft process is writing this file"):
            ResumableOutput(out, key).__enter__()
    with ResumableOutput(out, key) as b:
        assert b.done == {"1", "2"} and b.rows_before == 2 and b.dropped_bytes == 0
    out.write_text('{"id": "1"}\n{broken\n{"id": "3"}\n')  # damage in the middle is not a crash artefact
    with pytest.raises(DataError, match=r"o.jsonl:2: invalid JSON .* the output is damaged"):
        ResumableOutput(out, key).__enter__()
    out.write_bytes(b'{"id": "1"}')  # nothing shows mlxsft wrote this: neither cut nor mended
    with pytest.raises(DataError, match="its last line has no newline, and no row shows that mlxsft wrote"):
        ResumableOutput(out, key).__enter__()
    out.write_bytes(b'{"messages": [{"role": "user", "content": "Quest')  # a lone half line: whose?
    with pytest.raises(DataError, match="its last line is incomplete"):
        ResumableOutput(out, key).__enter__()
    assert out.read_bytes() == b'{"messages": [{"role": "user", "content": "Quest'
    out.unlink()
    with ResumableOutput(out, key) as c:
        c.append([{"id": "x", "text": "é"}])
    assert json.loads(out.read_text(encoding="utf-8")) == {"id": "x", "text": "é"}


def test_a_best_of_k_output_is_not_resumed_as_a_distill_one(tmp_path):
    path = prompts(tmp_path, 1)
    out = write_jsonl(tmp_path / "o.jsonl", [{"messages": [], "meta": {"step": "best-of-k", "prompt_id": "p0"}}])
    with pytest.raises(ConfigError) as e:
        distill(ScriptedTeacher(echo, name="t"), DistillOptions(prompts=path, out=out))
    assert "(best-of-k: teacher None), not this one (distill: teacher 't')" in str(e.value)
    write_jsonl(out, [{"messages": [{"role": "user", "content": "x"}]}])
    with pytest.raises(ConfigError, match=r"o.jsonl:1: .*\(a row without mlxsft's meta\)"):
        distill(ScriptedTeacher(echo, name="t"), DistillOptions(prompts=path, out=out))
