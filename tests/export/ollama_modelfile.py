'''A line-by-line Python port of Ollama's Modelfile parser (``ParseFile`` in ollama/ollama ``parser/parser.go``),
so tests can read a Modelfile back exactly as ``ollama create`` would, without Ollama.

    parse_modelfile('FROM ./m.gguf\\nSYSTEM """Be brief."""\\n')   # [("model", "./m.gguf"), ("system", "Be brief.")]

Raises ``ModelfileSyntaxError`` where Ollama reports a parse error.
'''

from __future__ import annotations

NIL, NAME, VALUE, PARAMETER, MESSAGE, COMMENT = range(6)
COMMANDS = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser", "parameter",
            "message", "requires")


class ModelfileSyntaxError(ValueError):
    pass


def _is_space(r: str) -> bool:
    return r in " \t"


def _is_newline(r: str) -> bool:
    return r in "\r\n"


def _go_trim_space(s: str) -> str:
    # Go's strings.TrimSpace: Unicode White_Space, which Python's str.strip() covers (plus \x1c-\x1f)
    return s.strip()


def _unquote(s: str) -> tuple[str, bool]:
    if len(s) >= 3 and s[:3] == '"""':
        if len(s) >= 6 and s[-3:] == '"""':
            return s[3:-3], True
        return "", False
    if len(s) >= 1 and s[0] == '"':
        if len(s) >= 2 and s[-1] == '"':
            return s[1:-1], True
        return "", False
    return s, True


def _next_state(r: str, cs: int) -> tuple[int, str | None]:
    """parseRuneForState: (next state, rune to keep or None)."""
    if cs == NIL:
        if r == "#":
            return COMMENT, None
        if _is_space(r) or _is_newline(r):
            return NIL, None
        return NAME, r
    if cs == NAME:
        if r.isascii() and r.isalpha():
            return NAME, r
        if _is_space(r):
            return VALUE, None
        raise ModelfileSyntaxError("invalid command")
    if cs == VALUE:
        return (NIL, r) if _is_newline(r) or _is_space(r) else (VALUE, r)
    if cs == PARAMETER:
        if (r.isascii() and r.isalnum()) or r == "_":
            return PARAMETER, r
        if _is_space(r):
            return VALUE, None
        raise ModelfileSyntaxError("unexpected EOF")
    if cs == MESSAGE:
        if r.isascii() and r.isalpha():
            return MESSAGE, r
        if _is_space(r):
            return VALUE, None
        raise ModelfileSyntaxError("unexpected EOF")
    if cs == COMMENT:
        return (NIL, None) if _is_newline(r) else (COMMENT, None)
    raise ModelfileSyntaxError("bad state")


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    commands: list[tuple[str, str]] = []
    name, role, curr, buf = "", "", NIL, []
    for r in text:
        nxt, keep = _next_state(r, curr)
        if nxt != curr:
            if curr == NAME:
                word = "".join(buf)
                if word.lower() not in COMMANDS:
                    raise ModelfileSyntaxError(f"invalid command {word!r}")
                s = word.lower()
                if s == "from":
                    name = "model"
                elif s == "parameter":
                    nxt = PARAMETER
                elif s == "message":
                    nxt = MESSAGE
                    name = s
                else:
                    name = s
            elif curr == PARAMETER:
                name = "".join(buf)
            elif curr == MESSAGE:
                role = "".join(buf)
                if role not in ("system", "user", "assistant"):
                    raise ModelfileSyntaxError("invalid message role")
            elif curr == VALUE:
                s, ok = _unquote(_go_trim_space("".join(buf)))
                if not ok or _is_space(r):
                    buf.append(r)
                    continue
                if role:
                    s, role = f"{role}: {s}", ""
                commands.append((name, s))
            buf = []
            curr = nxt
        if keep is not None and keep.isprintable():  # strconv.IsPrint
            buf.append(keep)
    if curr == VALUE:
        s, ok = _unquote(_go_trim_space("".join(buf)))
        if not ok:
            raise ModelfileSyntaxError("unexpected EOF")
        commands.append((name, f"{role}: {s}" if role else s))
    elif curr not in (NIL, COMMENT):
        raise ModelfileSyntaxError("unexpected EOF")
    if not any(n == "model" for n, _ in commands):
        raise ModelfileSyntaxError("no FROM line")
    return commands
