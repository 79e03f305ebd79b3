"""The endpoint client keeps the API key and the bill under control: no redirect is followed (the key would go to
whatever host ``Location`` names), plain http only to this machine, an answer is size-capped and has one deadline
in all, Ctrl-C sends nothing more, and a judge URL is named without its credentials.

Every server here listens on loopback (127.0.0.1, 127.0.0.2); no test connects anywhere else.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlxsft.curate.best_of_k import BestOfKOptions, best_of_k
from mlxsft.curate.scorers import make_scorer
from mlxsft.curate.teachers import MAX_BODY, EndpointTeacher, Sampling, make_teacher
from mlxsft.errors import ConfigError, ModelError
from tests.curate.conftest import ScriptedTeacher, read_jsonl, write_jsonl

SECRET = "sk-test-0123456789-do-not-leak"
MSG = [{"role": "user", "content": "Hi"}]
ANSWER = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "hello"}}]}).encode()


class Server:
    """A loopback HTTP server that records each request (method, path, headers) and answers with ``respond``."""

    def __init__(self, respond, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self.seen: list[tuple[str, str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.seen.append((self.command, self.path, dict(self.headers)))
                try:
                    respond(self)
                except OSError:  # the client hung up (a deadline test)
                    pass

            do_GET = do_POST = do_PUT = do_HEAD = handle_any

        try:
            self.http = ThreadingHTTPServer((host, 0), Handler)
        except OSError as e:
            pytest.skip(f"cannot listen on {host}: {e}")
        self.http.daemon_threads = True
        if tls is not None:
            self.http.socket = tls.wrap_socket(self.http.socket, server_side=True)
        self.base = f"{'https' if tls else 'http'}://{host}:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def servers():
    made = []

    def make(respond, host="127.0.0.1", tls=None):
        made.append(Server(respond, host, tls))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.fixture
def tls(tmp_path, monkeypatch):
    """A server-side TLS context for 127.0.0.1 with a fresh self-signed certificate, which the client trusts."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read by the client's default context, made per connection
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def trickling(response: bytes, start: int):
    """A handler that sends ``response[:start]`` at once, then one byte per 0.2 s."""

    def respond(h):
        h.wfile.write(response[:start])
        for i in range(start, len(response)):  # each read is quick, the whole takes ~30 s
            h.wfile.write(response[i:i + 1])
            time.sleep(0.2)

    return respond


RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER


def answer(h, payload=ANSWER):
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(payload)))
    h.end_headers()
    h.wfile.write(payload)


def no_network(monkeypatch, attempts=None):
    """Make every outgoing connection fail the test (or, with ``attempts``, be recorded and refused)."""

    def refuse(*a, **kw):
        if attempts is None:
            pytest.fail(f"a connection was attempted: {a}")
        attempts.append(a[0] if a else None)
        raise ConnectionRefusedError("refused by the test")

    for proxy in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def run_cli(argv, monkeypatch, capsys):
    from mlxsft.cli.main import main

    monkeypatch.setenv("MLXSFT_NO_BLAS_REEXEC", "1")
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


# ----------------------------------------------------------------------------------------------- redirects
@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_and_the_key_never_reaches_the_other_host(code, servers, monkeypatch):
    monkeypatch.setenv("MLXSFT_API_KEY", SECRET)
    other = servers(answer, host="127.0.0.2")  # would happily answer, and would see the key

    def redirect(h):
        h.send_response(code)
        h.send_header("Location", f"{other.base}/v1/chat/completions")
        h.send_header("Content-Length", "0")
        h.end_headers()

    first = servers(redirect)
    t = EndpointTeacher(first.base + "/v1", retries=3, sleep=lambda s: None)
    with pytest.raises(ModelError) as e:
        t.complete([MSG], Sampling())
    msg = str(e.value)
    assert f"HTTP {code} redirects to 127.0.0.2; redirects are refused" in msg
    assert "\n" not in msg and SECRET not in msg
    assert other.seen == []  # never asked, so never sent the Authorization header
    assert len(first.seen) == 1 and first.seen[0][2]["Authorization"] == f"Bearer {SECRET}"  # not retried


def test_cli_distill_stops_at_a_redirect_with_one_line(servers, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MLXSFT_API_KEY", SECRET)
    other = servers(answer, host="127.0.0.2")

    def redirect(h):
        h.send_response(302)
        h.send_header("Location", f"{other.base}/steal")
        h.send_header("Content-Length", "0")
        h.end_headers()

    first = servers(redirect)
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"question": "q"}])
    code, out, err = run_cli(["data", "distill", "--teacher", first.base + "/v1", "--prompts", str(prompts),
                              "--out", str(tmp_path / "o.jsonl")], monkeypatch, capsys)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(lines) == 1 and "HTTP 302 redirects to 127.0.0.2" in lines[0]
    assert "Traceback" not in err and SECRET not in out + err and other.seen == []


# ----------------------------------------------------------------------------------------------- https
def test_plain_http_to_another_machine_is_refused_before_any_connection(monkeypatch):
    no_network(monkeypatch)
    for url in ("http://example.com/v1", "http://10.1.2.3/v1", "http://user:pw@10.1.2.3:8080/v1?key=abc",
                "http://127.0.0.1.example.com/v1", "http://[fe80::1]/v1"):
        for make in (lambda: make_teacher(url), lambda: make_scorer(f"judge:{url}")):
            with pytest.raises(ConfigError) as e:
                make()
            msg = str(e.value)
            assert "plain http to another machine" in msg and "use https" in msg
            assert "--allow-insecure-endpoint" in msg and "pw" not in msg and "key=abc" not in msg
    for url in ("http://127.0.0.1:8080/v1", "http://127.4.5.6/v1", "http://localhost:8080/v1",
                "http://[::1]:8080/v1", "https://example.com/v1", "https://10.1.2.3/v1"):
        assert make_teacher(url).name  # accepted; nothing connects until a request is made
    assert make_teacher("http://10.1.2.3/v1", allow_insecure=True).name == "http://10.1.2.3/v1"


def test_cli_refuses_plain_http_unless_allowed_and_then_warns(monkeypatch, capsys, tmp_path):
    attempts: list = []
    no_network(monkeypatch, attempts)
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"question": "q"}])
    out = tmp_path / "o.jsonl"
    args = ["data", "distill", "--teacher", "http://10.1.2.3/v1", "--prompts", str(prompts), "--out", str(out),
            "--retries", "0"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 1 and err.count("\n") == 1 and "error: http://10.1.2.3/v1: plain http" in err
    assert attempts == [] and not out.exists()
    code, _, err = run_cli(args + ["--allow-insecure-endpoint"], monkeypatch, capsys)
    assert "warning: http://10.1.2.3/v1: plain http to another machine (--allow-insecure-endpoint)" in err
    assert code == 1 and "no answer after 1 tries" in err and "Traceback" not in err
    assert attempts == [("10.1.2.3", 80)]  # the flag let it through (to the test's refusing stand-in)
    judge = ["data", "best-of-k", "--model", "http://127.0.0.1:9/v1", "--scorer", "judge:http://10.1.2.3/v1",
             "--prompts", str(prompts), "--out", str(out), "--k", "1"]
    code, _, err = run_cli(judge, monkeypatch, capsys)
    assert code == 1 and "error: http://10.1.2.3/v1: plain http" in err and attempts == [("10.1.2.3", 80)]


# ----------------------------------------------------------------------------------------------- limits
@pytest.mark.parametrize("stage", ["headers", "body"])
def test_a_trickling_server_fails_at_the_deadline(stage, servers):
    server = servers(trickling(RESPONSE, 0 if stage == "headers" else RESPONSE.index(b"\r\n\r\n") + 4))
    t = EndpointTeacher(server.base + "/v1", timeout=1.0, retries=0)
    began = time.perf_counter()
    with pytest.raises(ModelError, match=r"no answer after 1 tries \(last: timed out\)"):
        t.complete([MSG], Sampling())
    assert time.perf_counter() - began < 3.0


def test_over_tls_the_deadline_holds_and_a_redirect_to_http_is_refused(tls, servers, monkeypatch):
    monkeypatch.setenv("MLXSFT_API_KEY", SECRET)
    ok = servers(answer, tls=tls)
    assert EndpointTeacher(ok.base + "/v1").complete([MSG], Sampling())[0].text == "hello"
    slow = servers(trickling(RESPONSE, RESPONSE.index(b"\r\n\r\n") + 4), tls=tls)
    began = time.perf_counter()
    with pytest.raises(ModelError, match=r"\(last: timed out\)"):
        EndpointTeacher(slow.base + "/v1", timeout=1.0, retries=0).complete([MSG], Sampling())
    assert time.perf_counter() - began < 3.0  # TLS wraps the socket: the deadline still cuts it
    plain = servers(answer, host="127.0.0.2")

    def downgrade(h):
        h.send_response(301)
        h.send_header("Location", f"{plain.base}/v1/chat/completions")
        h.send_header("Content-Length", "0")
        h.end_headers()

    first = servers(downgrade, tls=tls)
    with pytest.raises(ModelError, match="HTTP 301 redirects to 127.0.0.2; redirects are refused"):
        EndpointTeacher(first.base + "/v1").complete([MSG], Sampling())
    assert plain.seen == [] and len(first.seen) == 1


@pytest.mark.parametrize("length_header", [True, False])
def test_an_answer_over_the_size_cap_is_refused(length_header, servers):
    big = json.dumps({"choices": [{"message": {"content": "x" * 5000}}]}).encode()

    def huge(h):
        h.send_response(200)
        if length_header:
            h.send_header("Content-Length", str(len(big)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(big)

    server = servers(huge)
    t = EndpointTeacher(server.base + "/v1", retries=3, sleep=lambda s: None, max_body=4096)
    with pytest.raises(ModelError, match="the answer is larger than 4096 bytes, which no chat completion is"):
        t.complete([MSG], Sampling())
    assert len(server.seen) == 1  # refused, not retried
    assert MAX_BODY == 16 * 2**20 and EndpointTeacher(server.base + "/v1").max_body == MAX_BODY
    assert EndpointTeacher(server.base + "/v1", max_body=len(big)).complete([MSG], Sampling())[0].text == "x" * 5000


def test_ctrl_c_drops_the_requests_not_yet_sent(stub_factory):
    stub = stub_factory(delay=0.5)
    t = EndpointTeacher(stub.url, concurrency=2)
    main = threading.main_thread().ident

    def press_ctrl_c():
        deadline = time.monotonic() + 10
        while len(stub.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    began = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        t.complete([[{"role": "user", "content": f"q{i}"}] for i in range(10)], Sampling())
    assert time.perf_counter() - began < 0.45  # the two answers in flight were not waited for
    time.sleep(1.5)  # an executor that kept going would have sent 6 more by now
    assert len(stub.requests) == 2


# ----------------------------------------------------------------------------------------------- judge name
def test_a_judge_url_is_named_without_its_credentials(tmp_path):
    url = "https://user:hunter2@judge.example.com:8443/v1/?api_key=sk-query-secret"
    scorer = make_scorer(f"judge:{url}", judge_model="grader")  # no request is made here
    assert scorer.name == "judge:https://judge.example.com:8443/v1"
    scorer.judge = ScriptedTeacher(lambda q, n: "Score: 9")  # answer locally: the name is what is under test
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"question": "q1"}, {"question": "q2"}])
    opts = BestOfKOptions(prompts=prompts, out=tmp_path / "o.jsonl", k=1, threshold=5.0)
    res = best_of_k(ScriptedTeacher(lambda q, n: "answer"), scorer, opts)
    assert {r["meta"]["scorer"] for r in read_jsonl(opts.out)} == {"judge:https://judge.example.com:8443/v1"}
    report = json.dumps(res.to_dict())
    for text in (report, opts.out.read_text(), opts.rejected_path.read_text()):
        assert "hunter2" not in text and "sk-query-secret" not in text and "user@" not in text
    assert res.to_dict()["scorer"] == scorer.name
