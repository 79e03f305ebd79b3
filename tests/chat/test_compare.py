"""``chat --compare``: base and tuned answer together, a token each in turn; Ctrl-C stops both and keeps both
histories in step; /save writes both conversations."""

from __future__ import annotations

import json
import os
import sys
import time

from tests.chat.scripted import CHATML_END
from tests.chat.test_repl import Terminal
from tests.chat.test_session import fake_session
from tests.helpers import make_run


def test_both_answers_grow_together(wrapped_tokenizer):
    s = fake_session(wrapped_tokenizer)
    s.command("/compare on")
    order: list[str] = []
    turn = s.ask("hi", on_text=lambda name, piece: order.append(name))
    assert {n: a.text for n, a in turn.answers.items()} == {"base": "thereHello", "tuned": "Hello there"}
    assert order[:4] == ["base", "tuned", "base", "tuned"]  # interleaved, not one answer after the other


def test_a_stop_ends_both_answers_and_keeps_both_histories_in_step(wrapped_tokenizer, tmp_path):
    tok = wrapped_tokenizer
    s = fake_session(tok)
    s.command("/compare on")
    asked = []

    def stop() -> bool:  # Ctrl-C after the first token of each
        asked.append(1)
        return len(asked) >= 2

    turn = s.ask("hi", should_stop=stop)
    assert {n: a.finish_reason for n, a in turn.answers.items()} == {"base": "interrupted", "tuned": "interrupted"}
    assert len(s.history["base"]) == len(s.history["tuned"]) == 2
    s.ask("again")
    assert len(s.history["base"]) == len(s.history["tuned"]) == 4
    result = s.command(f"/save {tmp_path / 'chat.jsonl'}")
    assert result.message == (f"saved 1 conversation of tuned to {tmp_path / 'chat.jsonl'} and 1 conversation of "
                              f"base to {tmp_path / 'chat.base.jsonl'}")
    (tuned,) = [json.loads(x) for x in (tmp_path / "chat.jsonl").read_text().splitlines()]
    (base,) = [json.loads(x) for x in (tmp_path / "chat.base.jsonl").read_text().splitlines()]
    assert tuned["messages"][-1]["content"] == "Hello there" and base["messages"][-1]["content"] == "thereHello"
    assert CHATML_END not in json.dumps(tuned)


def test_compare_in_a_terminal_ctrl_c_stops_both_and_save_writes_both(tiny_llama_dir, tmp_path):
    run = make_run(tiny_llama_dir, tmp_path / "run")
    saved = tmp_path / "t.jsonl"
    term = Terminal([sys.executable, "-m", "mlxsft", "chat", "--adapter", str(run), "--compare", "--temp", "1",
                     "--max-tokens", "100000"])
    try:
        term.read_until(">>> ")
        term.type("Tell me a long story.\r")
        term.read_until("Tell me a long story.")
        term.read_until("tuned", timeout=60)  # both panels are streaming
        time.sleep(1.0)
        term.type("\x03")  # Ctrl-C mid-answer: both stop
        shown = term.read_until(">>> ", timeout=60)
        assert shown.count("stopped") >= 2 and "skipped" not in shown, shown[-3000:]
        time.sleep(0.3)
        term.type(f"/save {saved}\r")
        term.read_until("of base to", timeout=30)
        term.read_until(">>> ")
        time.sleep(0.2)
        term.type("\x04")
        assert term.wait() == 0
    finally:
        if not term.exited:
            os.kill(term.pid, 9)
            os.waitpid(term.pid, 0)
    for path in (saved, tmp_path / "t.base.jsonl"):
        (row,) = [json.loads(line) for line in path.read_text().splitlines()]
        assert row["messages"][0] == {"role": "user", "content": "Tell me a long story."}
        assert row["messages"][1]["role"] == "assistant" and row["messages"][1]["content"]
