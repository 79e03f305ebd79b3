"""Fixtures for the curation tests: prompt files, a scripted teacher, a stub chat-completions server on loopback,
the tiny MLX model folder."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlxsft.curate.teachers import Completion, Sampling
from tests.data.conftest import write_jsonl

__all__ = ["write_jsonl"]  # the curation tests import it from here


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


ARITHMETIC = [(a, b) for a, b in ((2, 3), (7, 5), (10, 4), (6, 6), (9, 8), (12, 3))]


def arithmetic_prompts(path: Path) -> Path:
    return write_jsonl(path, [{"id": f"add-{a}-{b}", "question": f"What is {a} + {b}? Reply with the number only.",
                               "reference": str(a + b)} for a, b in ARITHMETIC])


class ScriptedTeacher:
    """Answers from a function of (conversation, how many times this conversation was asked before).

    ``fail_after`` raises KeyboardInterrupt when that many batches have been answered (a Ctrl-C mid-run).
    """

    def __init__(self, answer, name: str = "scripted", fail_after: int | None = None):
        self.answer, self.name, self.fail_after = answer, name, fail_after
        self.asked: dict[str, int] = {}
        self.batches: list[int] = []

    def complete(self, conversations: list[list[dict]], sampling: Sampling) -> list[Completion]:
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise KeyboardInterrupt
        self.batches.append(len(conversations))
        out = []
        for msgs in conversations:
            q = msgs[-1]["content"]
            n = self.asked.get(q, 0)
            self.asked[q] = n + 1
            result = self.answer(q, n)
            if not isinstance(result, Completion):
                result = Completion(text=result, tokens=len(result.split()))
            out.append(result)
        return out

    def close(self) -> None:
        pass


class Stub:
    """A chat-completions server whose answers follow a script: a list of (status, delay_s) per request, then 200."""

    def __init__(self, script=(), delay: float = 0.0, body: bytes | None = None, reply=lambda text: "echo: " + text):
        self.script, self.delay, self.body, self.reply = list(script), delay, body, reply
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.active = self.max_active = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append(body)
                    stub.headers.append(dict(self.headers))
                    step = stub.script.pop(0) if stub.script else (200, stub.delay)
                    stub.active += 1
                    stub.max_active = max(stub.max_active, stub.active)
                status, delay = step
                done = False
                try:
                    time.sleep(delay)
                    # A request stops counting as active before its reply is written: the client may send its
                    # next request the moment the reply arrives, before this thread gets to run again.
                    with stub.lock:
                        stub.active -= 1
                    done = True
                    if status != 200:
                        self.send_response(status)
                        if status == 503:
                            self.send_header("Retry-After", "0")
                        self.end_headers()
                        self.wfile.write(b'{"error": "busy"}')
                        return
                    answer = stub.reply(body["messages"][-1]["content"])
                    payload = stub.body or json.dumps({
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": answer}}],
                        "usage": {"completion_tokens": 3}}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass
                finally:
                    if not done:
                        with stub.lock:
                            stub.active -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_factory():
    made = []

    def make(*a, **kw):
        s = Stub(*a, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="session")
def tiny_mlx_dir(tiny_llama_dir) -> Path:
    """The tiny random llama converted to an MLX folder (what mlx_lm.server and load_mlx read)."""
    from mlxsft.models import mlx_model_path

    return mlx_model_path(str(tiny_llama_dir))
