"""The chat REPL on a pseudo-terminal, as a user at a keyboard sees it: Ctrl-C mid-answer stops the answer and
not the REPL, Ctrl-C at the prompt does not leave, /save, /reset, /help, Ctrl-D leaves."""

from __future__ import annotations

import json
import os
import select
import sys
import time


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
