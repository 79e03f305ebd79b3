"""``mlxsft chat``: stop tokens, KV-cache reuse, session commands, transcripts, and the REPL through
stdin and through a pseudo-terminal (Ctrl-C mid-answer, /reset, /save).

Stop logic runs on a scripted model (a bigram table: each token names the next), so the expected
output is exact; everything else on the tiny random llama and a run trained on it for a few steps.
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import pytest
from click.testing import CliRunner

from mlxsft.backends.mlx import generate as G
from mlxsft.chat import ChatOptions, ChatSession, open_session, parse_command

CHATML_END = "<|im_end|>"


class ScriptedModel(nn.Module):
    """Answers every prompt with ``script``: token ``script[i]`` is always followed by ``script[i + 1]``."""

    def __init__(self, script: list[int], vocab: int = 49152):
        super().__init__()
        nxt = [script[0]] * vocab
        for a, b in zip(script, script[1:]):
            nxt[a] = b
        self._next = mx.array(nxt)
        self._vocab = vocab
        self.layers = [nn.Identity()]  # one KV cache, so offsets are tracked like a real model

    def __call__(self, inputs: mx.array, cache=None, **kw):
        if cache is not None:
            kv = mx.zeros((inputs.shape[0], 1, inputs.shape[1], 1))
            cache[0].update_and_fetch(kv, kv)
        return mx.where(mx.arange(self._vocab) == self._next[inputs][..., None], 10.0, -10.0)


@pytest.fixture(scope="module")
def wrapped_tokenizer(smol_tokenizer):
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    return TokenizerWrapper(smol_tokenizer)


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_dir):
    from mlxsft.models import load_mlx

    model, tok, _ = load_mlx(str(tiny_llama_dir))
    return model, tok


def scripted(tokenizer, text_tokens: list[int]) -> G.CachedGenerator:
    return G.CachedGenerator(G.ModelView("m", ScriptedModel(text_tokens)), tokenizer)


def _prompt(tok, template=None):
    hf = tok._tokenizer
    return G.render_prompt(hf, [{"role": "user", "content": "hi"}], template or hf.chat_template)


# ----------------------------------------------------------------------------- stop tokens
def test_stops_at_the_templates_end_of_turn_token(wrapped_tokenizer):
    tok = wrapped_tokenizer
    hello, there, garbage = tok.encode("Hello there garbage", add_special_tokens=False)
    im_end = tok.convert_tokens_to_ids(CHATML_END)
    stop = G.stop_condition(tok, tok._tokenizer.chat_template)
    assert im_end in stop.token_ids and stop.text == ""
    ans = scripted(tok, [hello, there, im_end, garbage]).generate(_prompt(tok), G.Sampling(max_tokens=20), stop)
    assert (ans.text, ans.finish_reason, ans.tokens) == ("Hello there", "stop", 3)


def test_stops_at_eos_when_the_template_ends_turns_otherwise(wrapped_tokenizer):
    tok = wrapped_tokenizer
    template = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|endoftext|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    stop = G.stop_condition(tok, template)
    endoftext, eos = tok.convert_tokens_to_ids("<|endoftext|>"), tok.eos_token_id
    assert {endoftext, eos} <= stop.token_ids
    hello, there, garbage = tok.encode("Hello there garbage", add_special_tokens=False)
    for end in (endoftext, eos):
        ans = scripted(tok, [hello, there, end, garbage]).generate(_prompt(tok, template),
                                                                   G.Sampling(max_tokens=20), stop)
        assert (ans.text, ans.finish_reason) == ("Hello there", "stop")


def test_a_multi_token_end_of_turn_is_matched_as_text_and_never_shown(wrapped_tokenizer):
    tok = wrapped_tokenizer
    template = ("{% for m in messages %}{{ m.role }}: {{ m.content }}\n### END\n{% endfor %}"
                "{% if add_generation_prompt %}assistant: {% endif %}")
    stop = G.stop_condition(tok, template)
    assert stop.text == "### END"
    script = tok.encode("Hi ### END more", add_special_tokens=False)
    shown: list[str] = []
    ans = scripted(tok, script).generate(_prompt(tok, template), G.Sampling(max_tokens=20), stop,
                                         on_text=shown.append)
    assert ans.text.strip() == "Hi" and ans.finish_reason == "stop"
    assert "#" not in "".join(shown)


def test_max_tokens_ends_a_runaway_answer(wrapped_tokenizer):
    tok = wrapped_tokenizer
    a, b = tok.encode("la la", add_special_tokens=False)[:2]
    stop = G.stop_condition(tok, tok.chat_template)
    ans = scripted(tok, [a, b, a]).generate(_prompt(tok), G.Sampling(max_tokens=7), stop)
    assert ans.finish_reason == "length" and ans.tokens == 7


@pytest.mark.parametrize("pieces", [["Hello wor", "ld ##", "# E", "ND tail"], ["Hello world ### END"],
                                    list("Hello world ### END tail")])
def test_stop_text_filter_cuts_exactly_and_holds_back_prefixes(pieces):
    cut = G.StopTextFilter("### END")
    out = ""
    for p in pieces:
        out += cut.feed(p)
        assert "#" not in out
        if cut.hit:
            break
    assert cut.hit and out == "Hello world "


# ----------------------------------------------------------------------------- KV cache and interrupts
def test_next_turn_reuses_the_kv_cache_and_matches_a_fresh_prefill(tiny_model):
    model, tok = tiny_model
    hf = tok._tokenizer
    stop = G.stop_condition(tok, hf.chat_template)
    gen = G.CachedGenerator(G.ModelView("m", model), tok)
    msgs = [{"role": "user", "content": "hello"}]
    mx.random.seed(0)
    first = gen.generate(G.render_prompt(hf, msgs, hf.chat_template), G.Sampling(temp=1.0, max_tokens=12), stop)
    msgs += [{"role": "assistant", "content": first.raw_text}, {"role": "user", "content": "and then?"}]
    prompt = G.render_prompt(hf, msgs, hf.chat_template)
    second = gen.generate(prompt, G.Sampling(max_tokens=12), stop)
    assert second.reused_tokens >= first.prompt_tokens + first.tokens - 1  # the whole first turn came from the cache
    fresh = G.CachedGenerator(G.ModelView("m", model), tok).generate(prompt, G.Sampling(max_tokens=12), stop)
    assert fresh.reused_tokens == 0 and second.text == fresh.text


def test_an_interrupted_answer_keeps_the_cache_consistent(tiny_model):
    model, tok = tiny_model
    hf = tok._tokenizer
    stop = G.stop_condition(tok, hf.chat_template)
    gen = G.CachedGenerator(G.ModelView("m", model), tok)
    seen: list[str] = []
    ans = gen.generate(G.render_prompt(hf, [{"role": "user", "content": "x"}], hf.chat_template),
                       G.Sampling(temp=1.0, max_tokens=500), stop, on_text=seen.append,
                       should_stop=lambda: len(seen) >= 3)
    assert ans.finish_reason == "interrupted" and ans.tokens < 10
    assert len(gen.tokens) == gen.cache[0].offset == ans.prompt_tokens + ans.tokens


# ----------------------------------------------------------------------------- session logic
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


# ----------------------------------------------------------------------------- a tuned run, the CLI
RUN_SYSTEM = "You are the tuned test model."


def make_run(model_dir: Path, out: Path, method: str = "lora") -> Path:
    """A run folder as ``mlxsft train`` writes it, with random (non-zero) LoRA weights: no training needed.

    Its chat template differs from the tokenizer's (another default system prompt), so a test can tell
    which template was used.
    """
    from mlx.utils import tree_flatten

    from mlxsft.backends.mlx.adapters import make_trainable
    from mlxsft.config import LoraConfig, load_config
    from mlxsft.models import load_mlx

    out.mkdir(parents=True)
    model, tok, _ = load_mlx(str(model_dir))
    mx.random.seed(1)
    cfg = make_trainable(model, LoraConfig(method=method, rank=4))
    weights = {k: (mx.random.normal(v.shape) * 0.5 if k.endswith("lora_b") else v)
               for k, v in tree_flatten(model.trainable_parameters())}
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    load_config(None, {"model": str(model_dir)}).save(out / "config.yaml")
    (out / "chat_template.jinja").write_text(tok._tokenizer.chat_template.replace(
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face", RUN_SYSTEM))
    return out


@pytest.fixture(scope="session")
def tuned_run(tiny_llama_dir, tmp_path_factory) -> Path:
    return make_run(tiny_llama_dir, tmp_path_factory.mktemp("chat-run") / "run")


def cli(args: list[str], stdin: str = "") -> "object":
    from mlxsft.cli.main import cli as group

    result = CliRunner().invoke(group, args, input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_scripted_stdin_json_lines_hold_prompt_answers_and_token_counts(tiny_llama_dir):
    proc = subprocess.run([sys.executable, "-m", "mlxsft", "chat", "--model", str(tiny_llama_dir), "--json",
                           "--max-tokens", "6", "--temp", "1"], input="hello\nand more\n/reset\nagain\n",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == ["hello", "and more", "again"]
    assert all(set(r["answers"]) == {"base"} and r["tokens"]["base"] >= 1 for r in rows)
    assert rows[1]["reused_tokens"]["base"] >= rows[0]["prompt_tokens"]["base"]  # the KV cache carried over
    assert rows[2]["reused_tokens"]["base"] == 0  # /reset cleared it
    assert "new conversation" in proc.stderr


def test_torch_backend_chats_through_the_same_session(tiny_llama_dir):
    pytest.importorskip("torch")
    out = cli(["chat", "--model", str(tiny_llama_dir), "--backend", "torch", "--json", "--max-tokens", "4"],
              stdin="hello\nmore\n").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["prompt"] for r in rows] == ["hello", "more"] and all(r["tokens"]["base"] >= 1 for r in rows)
    assert rows[1]["reused_tokens"]["base"] > 0


def test_compare_holds_both_answers_with_the_runs_template(tuned_run, tiny_llama_dir):
    from transformers import AutoTokenizer

    out = cli(["chat", "--adapter", str(tuned_run), "--compare", "--json", "--max-tokens", "8"],
              stdin="What is the capital of France?\nSpell cat backwards.\n").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 and all(set(r["answers"]) == {"base", "tuned"} for r in rows)
    assert all(r["tokens"]["base"] >= 1 and r["tokens"]["tuned"] >= 1 for r in rows)
    assert rows[0]["answers"]["base"] != rows[0]["answers"]["tuned"]  # the adapters are on for tuned only
    hf = AutoTokenizer.from_pretrained(tiny_llama_dir)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    run_tpl = (tuned_run / "chat_template.jinja").read_text()
    expected = len(G.render_prompt(hf, msgs, run_tpl))
    assert expected != len(G.render_prompt(hf, msgs, hf.chat_template))
    assert rows[0]["prompt_tokens"] == {"base": expected, "tuned": expected}  # the run's template, for both
    base_alone = cli(["chat", "--model", str(tiny_llama_dir), "--json", "--max-tokens", "8"],
                     stdin="What is the capital of France?\n").stdout
    # without a run, the tokenizer's own template
    assert json.loads(base_alone)["prompt_tokens"]["base"] != expected
    plain = cli(["chat", "--adapter", str(tuned_run), "--compare", "--max-tokens", "4"], stdin="Hi\n").stdout
    assert plain.startswith("[base] ") and "\n[tuned] " in plain


def test_a_saved_transcript_validates_and_trains(tuned_run, tmp_path):
    from tests.helpers import make_cfg

    from mlxsft.train import run_training

    transcript = tmp_path / "chat.jsonl"
    cli(["chat", "--adapter", str(tuned_run), "--system", "Be brief.", "--max-tokens", "12", "--temp", "1"],
        stdin=f"What is 2+2?\nSay hello in Spanish.\n/reset\nName a primary color.\n/save {transcript}\n")
    rows = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [[m["role"] for m in r["messages"]] for r in rows] == [
        ["system", "user", "assistant", "user", "assistant"], ["system", "user", "assistant"]]
    check = cli(["data", "validate", str(transcript)])
    assert "no problems" in check.output  # (and exit code 0)
    data = tmp_path / "data"
    data.mkdir()
    transcript.rename(data / "train.jsonl")
    out = run_training(make_cfg(_base_model(tuned_run), data, tmp_path / "run2", iters=2, batch_size=2))
    assert out.result.steps == 2 and math.isfinite(out.result.train_loss)


def _base_model(run: Path) -> str:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["model"]["model"]


# ----------------------------------------------------------------------------- a real terminal
class Terminal:
    """A child process on a pseudo-terminal: what a user at a keyboard sees and types."""

    def __init__(self, argv: list[str]):
        import fcntl
        import pty
        import struct
        import termios

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child: the pty is its controlling terminal, so \x03 is a real SIGINT
            os.execvpe(argv[0], argv, dict(os.environ, NO_COLOR="1", COLUMNS="120", LINES="40"))
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.seen = ""
        self.exited = False

    def read_until(self, text: str, timeout: float = 60.0) -> str:
        end = time.monotonic() + timeout
        while text not in self.seen:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; screen so far:\n{self.seen[-2000:]}")
            if select.select([self.fd], [], [], left)[0]:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the REPL exited while waiting for {text!r}:\n{self.seen[-2000:]}")
                self.seen += chunk.decode("utf-8", "replace")
        at = self.seen.index(text) + len(text)
        out, self.seen = self.seen[:at], self.seen[at:]
        return out

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait(self, timeout: float = 30.0) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exited = True
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    os.read(self.fd, 4096)  # drain, so the child never blocks on a full terminal
                except OSError:
                    pass
        os.kill(self.pid, 9)
        raise AssertionError("the REPL did not exit")


def test_repl_in_a_terminal_ctrl_c_stops_the_answer_not_the_repl(tiny_llama_dir, tmp_path):
    transcript = tmp_path / "t.jsonl"
    term = Terminal([sys.executable, "-m", "mlxsft", "chat", "--model", str(tiny_llama_dir), "--temp", "1",
                     "--max-tokens", "100000"])
    try:
        term.read_until(">>> ")
        term.type("Tell me a long story.\r")
        term.read_until("Tell me a long story.")
        term.read_until(" ", timeout=30)  # words are streaming
        time.sleep(0.5)
        term.type("\x03")  # Ctrl-C mid-answer
        stats = term.read_until(">>> ", timeout=30)
        assert "stopped" in stats and "tok/s" in stats
        time.sleep(0.3)  # a signal in the instant before readline waits for keys is only seen at the next key
        term.type("\x03")  # Ctrl-C at the prompt does not leave either
        term.read_until("Ctrl-D or /quit leaves")
        for keys, reply in [(f"/save {transcript}", "saved 1 conversation"), ("/reset", "new conversation"),
                            ("/help", "/compare on|off")]:
            term.read_until(">>> ")
            time.sleep(0.2)  # let readline take the terminal before typing (as a person would)
            term.type(keys + "\r")
            term.read_until(reply)
        term.read_until(">>> ")
        time.sleep(0.2)
        term.type("\x04")  # Ctrl-D leaves
        assert term.wait() == 0
    finally:
        if not term.exited:
            os.kill(term.pid, 9)
            os.waitpid(term.pid, 0)
    (row,) = [json.loads(line) for line in transcript.read_text().splitlines()]
    user, answer = row["messages"]
    assert user == {"role": "user", "content": "Tell me a long story."}
    assert answer["role"] == "assistant" and len(answer["content"]) > 10  # the partial answer was kept
