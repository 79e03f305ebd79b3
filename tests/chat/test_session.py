"""The chat session without a terminal: commands (/system, /compare, /reset, /save ...), history, transcripts,
and a backend whose packages are missing. Runs on scripted models (tests/chat/scripted.py)."""

from __future__ import annotations

import json
import sys

import pytest

from mlxsft.backends.mlx import generate as G
from mlxsft.chat import ChatOptions, ChatSession, open_session, parse_command
from tests.chat.scripted import CHATML_END, scripted


def fake_session(tok, compare_capable: bool = True) -> ChatSession:
    hello, there = tok.encode("Hello there", add_special_tokens=False)
    im_end = tok.convert_tokens_to_ids(CHATML_END)
    gens = {"tuned": scripted(tok, [hello, there, im_end])}
    if compare_capable:
        gens["base"] = scripted(tok, [there, hello, im_end])
    return ChatSession(generators=gens, tokenizer=tok, template=tok.chat_template, template_kwargs={},
                       stop=G.stop_condition(tok, tok.chat_template), sampling=G.Sampling(max_tokens=10),
                       backend=G)


def test_commands_reset_system_compare_help_and_unknown(wrapped_tokenizer, tmp_path):
    s = fake_session(wrapped_tokenizer)
    assert parse_command("hello") is None and parse_command("//not a command") is None
    assert s.command("/help").message.count("\n") >= 5
    assert s.command("/bogus").error
    assert s.command("/system Be brief.").message == "system prompt: Be brief."
    turn = s.ask("hi")
    assert list(turn.answers) == ["tuned"] and turn.answers["tuned"].text == "Hello there"
    assert s.messages()[0] == {"role": "system", "content": "Be brief."}
    assert s.command("/compare on").message.startswith("compare on")
    turn = s.ask("again")
    assert {n: a.text for n, a in turn.answers.items()} == {"base": "thereHello", "tuned": "Hello there"}
    assert len(s.history["base"]) == 4  # joined with the tuned model's first turn
    s.command("/compare off")
    assert s.active == ["tuned"] and "base" not in s.history
    s.command("/reset")
    assert s.history == {"tuned": []} and len(s.finished) == 1
    assert s.command("/quit").quit
    assert fake_session(wrapped_tokenizer, compare_capable=False).command("/compare on").error


def test_save_writes_messages_rows_one_per_conversation(wrapped_tokenizer, tmp_path):
    s = fake_session(wrapped_tokenizer)
    s.command("/system Be brief.")
    s.ask("one")
    s.ask("two")
    s.command("/reset")
    s.ask("three")
    result = s.command(f"/save {tmp_path / 't.jsonl'}")
    assert not result.error, result.message
    rows = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [[m["role"] for m in r["messages"]] for r in rows] == [
        ["system", "user", "assistant", "user", "assistant"], ["system", "user", "assistant"]]
    assert rows[1]["messages"][1:] == [{"role": "user", "content": "three"},
                                       {"role": "assistant", "content": "Hello there"}]
    assert s.command(f"/save {tmp_path / 'missing' / 'x.jsonl'}").error


def test_a_backend_without_its_packages_is_a_clear_error(monkeypatch):
    from mlxsft.errors import MlxsftError

    monkeypatch.delitem(sys.modules, "mlxsft.backends.torch.generate", raising=False)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(MlxsftError, match=r"the torch backend needs torch") as e:
        open_session(ChatOptions(model="whatever", backend="torch"))
    assert "mlxsft[torch]" in e.value.hint
