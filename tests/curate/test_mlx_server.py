"""distill through a real OpenAI-compatible server: mlx_lm.server on loopback serving the tiny MLX model."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.curate.conftest import read_jsonl, write_jsonl

ENV = dict(os.environ, MLXSFT_NO_BLAS_REEXEC="1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlx_server(tiny_mlx_dir, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlx_lm", "server", "--model", str(tiny_mlx_dir),
                                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"],
                                stdout=out, stderr=subprocess.STDOUT, env=ENV)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlx_lm.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if json.loads(r.read()).get("status") == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlx_lm.server not ready after 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_distill_through_mlx_lm_server(mlx_server, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "question": f"Count to {i}."} for i in range(4)])
    out = tmp_path / "distilled.jsonl"
    args = [sys.executable, "-m", "mlxsft", "data", "distill", "--teacher", mlx_server, "--prompts", str(prompts),
            "--out", str(out), "--k", "2", "--temp", "0.7", "--max-tokens", "6", "--concurrency", "2",
            "--timeout", "60"]
    r = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    assert sorted((row["meta"]["prompt_id"], row["meta"]["sample"]) for row in rows) == \
        [(f"q{i}", s) for i in range(4) for s in (0, 1)]
    for row in rows:
        meta = row["meta"]
        assert meta["teacher"] == mlx_server and meta["finish_reason"] == "length" and meta["tokens"] == 6
        assert row["messages"][-1]["role"] == "assistant" and row["messages"][-1]["content"].strip()
    # resuming finds everything done: no request is sent
    again = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0 and len(read_jsonl(out)) == 8
    assert re.search(r"rows written now\s*│\s*0\s*│", again.stdout), again.stdout
    assert re.search(r"rows in output\s*│\s*8\s*│", again.stdout), again.stdout
