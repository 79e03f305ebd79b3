"""The OpenAI-compatible endpoint client against a local stub server: retries with backoff, timeouts, the
concurrency limit, per-prompt refusals, and an API key that never leaves the request header."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from mlxsft.curate.distill import DistillOptions, distill
from mlxsft.curate.teachers import EndpointTeacher, Sampling, make_teacher, redact_url
from mlxsft.errors import ConfigError, ModelError
from tests.curate.conftest import read_jsonl, write_jsonl

SECRET = "sk-test-0123456789-do-not-leak"
MSG = [{"role": "user", "content": "Hi"}]


def teacher(url, sleeps=None, **kw):
    return EndpointTeacher(url, **{"retries": 3, "backoff": 0.5, "sleep": (sleeps.append if sleeps is not None
                                                                           else time.sleep), **kw})


def test_transient_failures_are_retried_with_exponential_backoff(stub_factory):
    stub = stub_factory(script=[(502, 0), (500, 0), (429, 0)])
    sleeps: list[float] = []
    t = teacher(stub.url, sleeps)
    [c] = t.complete([MSG], Sampling(temp=0.5, max_tokens=7))
    assert (c.text, c.tokens, c.finish_reason, c.error) == ("echo: Hi", 3, "stop", None)
    assert t.retries_done == 3 and len(stub.requests) == 4
    for i, s in enumerate(sleeps):  # 0.5, 1, 2 seconds, each with up to 25% jitter
        assert 0.5 * 2 ** i <= s <= 1.25 * 0.5 * 2 ** i
    assert stub.requests[0] == {"messages": MSG, "temperature": 0.5, "top_p": 1.0, "max_tokens": 7}


def test_retry_after_is_honoured(stub_factory):
    stub = stub_factory(script=[(503, 0)])
    sleeps: list[float] = []
    assert teacher(stub.url, sleeps).complete([MSG], Sampling())[0].text == "echo: Hi"
    assert sleeps == [0.0]  # the server said Retry-After: 0


def test_giving_up_after_the_retries_is_one_clear_error(stub_factory):
    stub = stub_factory(script=[(503, 0)] * 10)
    with pytest.raises(ModelError, match=r"no answer after 3 tries \(last: HTTP 503\)"):
        teacher(stub.url, [], retries=2).complete([MSG], Sampling())
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModelError, match=r"127.0.0.1:\d+/v1: no answer after 2 tries \(last: .*refused"):
        teacher(f"http://127.0.0.1:{port}/v1", [], retries=1).complete([MSG], Sampling())


def test_a_slow_answer_times_out_and_is_retried(stub_factory):
    stub = stub_factory(script=[(200, 1.5)])
    t = teacher(stub.url, [], timeout=0.3)
    start = time.perf_counter()
    assert t.complete([MSG], Sampling())[0].text == "echo: Hi"
    assert t.retries_done == 1 and time.perf_counter() - start < 1.4
    stub2 = stub_factory(delay=1.0)
    with pytest.raises(ModelError, match=r"no answer after 2 tries \(last: timed out\)"):
        teacher(stub2.url, [], timeout=0.2, retries=1).complete([MSG], Sampling())


def test_concurrency_is_limited(stub_factory):
    stub = stub_factory(delay=0.15)
    t = teacher(stub.url, concurrency=3)
    out = t.complete([[{"role": "user", "content": f"q{i}"}] for i in range(9)], Sampling())
    assert [c.text for c in out] == [f"echo: q{i}" for i in range(9)]  # in order
    assert stub.max_active == 3


def test_a_refused_prompt_fails_alone_and_auth_errors_stop_the_run(stub_factory, monkeypatch):
    stub = stub_factory(script=[(400, 0)])
    [c] = teacher(stub.url, []).complete([MSG], Sampling())
    assert c.error is not None and c.error.startswith("HTTP 400") and len(stub.requests) == 1
    monkeypatch.setenv("MLXSFT_API_KEY", SECRET)
    stub = stub_factory(script=[(401, 0)])
    with pytest.raises(ModelError) as e:
        teacher(stub.url, []).complete([MSG], Sampling())
    assert "HTTP 401" in str(e.value) and "MLXSFT_API_KEY" in str(e.value) and SECRET not in str(e.value)
    bad = stub_factory(body=b'{"unexpected": true}')
    with pytest.raises(ModelError, match="not an OpenAI chat-completions response"):
        teacher(bad.url, []).complete([MSG], Sampling())


def test_the_api_key_comes_from_the_environment_and_is_sent_only_as_a_header(stub_factory, monkeypatch, tmp_path):
    monkeypatch.delenv("MLXSFT_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    stub = stub_factory()
    t = make_teacher(stub.url, model_name="teacher-1")
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"question": f"q{i}"} for i in range(3)])
    res = distill(t, DistillOptions(prompts=prompts, out=tmp_path / "o.jsonl"))
    assert res.rows_written == 3
    assert {h["Authorization"] for h in stub.headers} == {f"Bearer {SECRET}"}
    assert {r["model"] for r in stub.requests} == {"teacher-1"}
    assert SECRET not in (tmp_path / "o.jsonl").read_text()
    assert read_jsonl(tmp_path / "o.jsonl")[0]["meta"]["teacher"] == f"{stub.url} (model teacher-1)"
    monkeypatch.setenv("MY_KEY", "other")
    assert make_teacher(stub.url, api_key_env="MY_KEY")._headers()["Authorization"] == "Bearer other"
    with pytest.raises(ConfigError, match="--api-key-env NOPE: that environment variable is not set"):
        make_teacher(stub.url, api_key_env="NOPE")
    assert redact_url("https://user:pw@host:8443/v1/?key=x") == "https://host:8443/v1"


def test_cli_distill_through_an_endpoint_never_prints_the_key(stub_factory, tmp_path):
    stub = stub_factory(script=[(503, 0)])
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"question": f"q{i}"} for i in range(4)])
    env = dict(os.environ, MLXSFT_NO_BLAS_REEXEC="1", MLXSFT_API_KEY=SECRET)
    args = [sys.executable, "-m", "mlxsft", "data", "distill", "--teacher", stub.url, "--prompts", str(prompts),
            "--out", str(tmp_path / "o.jsonl"), "--concurrency", "2"]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(read_jsonl(tmp_path / "o.jsonl")) == 4 and "requests retried" in r.stdout
    refused = stub_factory(script=[(403, 0)] * 4)
    args[args.index(stub.url)] = refused.url
    r2 = subprocess.run(args + ["--overwrite"], capture_output=True, text=True, env=env, timeout=120)
    assert r2.returncode == 1 and "HTTP 403" in r2.stderr and "Traceback" not in r2.stderr
    for text in (r.stdout, r.stderr, r2.stdout, r2.stderr, (tmp_path / "o.jsonl").read_text()):
        assert SECRET not in text


def test_judge_scorer_through_an_endpoint(stub_factory):
    from mlxsft.curate.prompts import to_prompt
    from mlxsft.curate.scorers import make_scorer

    stub = stub_factory(reply=lambda text: "Score: 8" if ">>>\n\nAnswer:\n<<<\nParis\n>>>" in text else "Score: 2")
    judge = make_scorer(f"judge:{stub.url}", judge_model="grader")
    p = to_prompt({"question": "Capital of France?"}, "p.jsonl", 1)
    assert judge.score([(p, "Paris"), (p, "Lyon")]) == [8.0, 2.0]
    assert {r["model"] for r in stub.requests} == {"grader"} and {r["temperature"] for r in stub.requests} == {0.0}
    assert judge.name == f"judge:{stub.url}"


def test_ctrl_c_during_cli_distill_then_the_same_command_resumes(stub_factory, tmp_path):
    import signal

    stub = stub_factory(delay=0.4)
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "question": f"q{i}"} for i in range(8)])
    out = tmp_path / "o.jsonl"
    args = [sys.executable, "-m", "mlxsft", "data", "distill", "--teacher", stub.url, "--prompts", str(prompts),
            "--out", str(out), "--concurrency", "1", "--batch-size", "2"]
    env = dict(os.environ, MLXSFT_NO_BLAS_REEXEC="1")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    done = [r["meta"]["prompt_id"] for r in read_jsonl(out)]
    assert 2 <= len(done) < 8
    asked_before = len(stub.requests)
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(x["meta"]["prompt_id"] for x in read_jsonl(out)) == [f"q{i}" for i in range(8)]
    assert len(stub.requests) - asked_before == 8 - len(done)  # only the missing prompts were asked again
