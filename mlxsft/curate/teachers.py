"""Where responses come from: a local model (any model spec, MLX batched generation) or an OpenAI-compatible
endpoint (``/v1/chat/completions`` over HTTP: mlx_lm.server, llama.cpp, vLLM, OpenAI, ...).

    teacher = make_teacher("smollm2-135m-instruct")                       # local, batched
    teacher = make_teacher("http://127.0.0.1:8080/v1", model_name="default_model", concurrency=4)
    completions = teacher.complete([[{"role": "user", "content": "Hi"}]] * 4, Sampling(temp=0.7))

One ``Completion`` per conversation, in order; ask for K samples of a prompt by passing it K times.

The endpoint client uses only the standard library. Each request has a deadline for the whole exchange
(connect, wait, read: a server that trickles bytes cannot hold it open) and an answer is at most ``MAX_BODY``
bytes; connection errors, timeouts and HTTP 408/409/425/429/5xx are retried with exponential backoff
(``Retry-After`` honoured); a 400/413/422 fails only that prompt (``Completion.error``: not written, tried again on
a re-run); 401/403/404 and any redirect stop the run at once. Ctrl-C drops the requests not yet sent.

The API key comes from an environment variable only (``--api-key-env``, else ``MLXSFT_API_KEY`` or
``OPENAI_API_KEY``), is never part of a name, a message or an output row, and goes only to the URL given: plain
``http://`` is refused unless the host is this machine (127.0.0.0/8, ::1, localhost) or ``allow_insecure`` is set,
and redirects are refused rather than followed (urllib would re-send the header to wherever ``Location`` points).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import random
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Protocol

from mlxsft.errors import ConfigError, ModelError

API_KEY_ENVS = ("MLXSFT_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
PROMPT_STATUS = frozenset({400, 413, 422})  # this request is bad (too long, refused); the next may be fine
REFILL_FACTOR = 4  # a local teacher's call holds this many batches of answers (LocalTeacher.answers_per_call)
MAX_BODY = 16 << 20  # bytes: a chat completion is far smaller; a larger answer is a misbehaving server


@dataclass(frozen=True)
class Sampling:
    temp: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Completion:
    text: str
    tokens: int = 0  # generated tokens (as reported by the endpoint)
    finish_reason: str = "stop"  # stop | length | error
    error: Optional[str] = None  # set when this one prompt failed


class Teacher(Protocol):
    name: str  # for provenance: a model spec, or the endpoint without credentials

    def complete(self, conversations: list[list[dict]], sampling: Sampling) -> list[Completion]: ...

    def close(self) -> None: ...


def is_endpoint(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def make_teacher(spec: str, *, model_name: Optional[str] = None, api_key_env: Optional[str] = None,
                 batch_size: int = 16, concurrency: int = 4, timeout: float = 120.0, retries: int = 4,
                 allow_insecure: bool = False,
                 load_progress: Optional[Callable[[str, float], None]] = None) -> Teacher:
    """An ``EndpointTeacher`` for an ``http(s)://`` URL, else a ``LocalTeacher`` for a model spec."""
    if is_endpoint(spec):
        return EndpointTeacher(spec, model_name, api_key_env=api_key_env, concurrency=concurrency,
                               timeout=timeout, retries=retries, allow_insecure=allow_insecure)
    if model_name:
        raise ConfigError("--teacher-model / --judge-model name a model served by an endpoint; "
                          f"'{spec}' is a local model spec")
    return LocalTeacher(spec, batch_size=batch_size, progress=load_progress)


# ----------------------------------------------------------------------------------------------- local (MLX)
class LocalTeacher:
    """A model loaded with ``mlxsft.models.load_mlx``; answers a list of conversations in one batched run
    (``mlxsft/backends/mlx/batch.py``: a conversation asked K times is prefilled once), sampled with
    ``temp``/``top_p``. Each answer has its own seed, from ``Sampling.seed``, the conversation and which of its
    repeats it is (``row_seeds``): the same answer whatever batch it runs in, so a resumed run draws what a
    whole run would."""

    def __init__(self, spec: str, *, batch_size: int = 16, chat_template: Optional[str] = None,
                 progress: Optional[Callable[[str, float], None]] = None):
        from mlxsft.backends import registry
        from mlxsft.backends.generation import hf_tokenizer
        from mlxsft.data.templates import resolve_chat_template
        from mlxsft.models import load_mlx

        self.generate = registry.part("mlx", "generate")  # first: a missing mlx / mlx-lm gives the install hint
        self.name = spec
        self.batch_size = max(1, batch_size)  # rows decoded together
        # answers asked per call (best-of-k and distill gather this many): more than the rows decoded together,
        # so a finished answer's row takes the next request at once instead of idling until the call's longest
        # answer ends; the rows are written when the call returns
        self.answers_per_call = REFILL_FACTOR * self.batch_size
        self.model, self.tokenizer, self.folder = load_mlx(spec, progress=progress)
        self.model.eval()
        self.hf = hf_tokenizer(self.tokenizer)
        self.template = resolve_chat_template(self.hf, chat_template)

    def complete(self, conversations: list[list[dict]], sampling: Sampling) -> list[Completion]:
        if not conversations:
            return []
        answers = self.generate.generate_answers_batch(
            self.model, self.tokenizer, conversations, self.template, max_tokens=sampling.max_tokens,
            batch_size=self.batch_size, temp=sampling.temp, top_p=sampling.top_p,
            seeds=row_seeds(sampling.seed, conversations))
        return [Completion(text=a.text, tokens=a.tokens, finish_reason=a.finish_reason) for a in answers]

    def close(self) -> None:
        self.model = None


def row_seeds(seed: int, conversations: list[list[dict]]) -> list[int]:
    """One seed per conversation from ``seed``, its content and how many times it came before in the list (the
    K samples of a prompt differ)."""
    import hashlib

    seen: dict[str, int] = {}
    out = []
    for conv in conversations:
        text = json.dumps(conv, sort_keys=True)
        repeat = seen.get(text, 0)
        seen[text] = repeat + 1
        digest = hashlib.sha256(json.dumps([seed, repeat, text]).encode()).digest()
        out.append(int.from_bytes(digest[:8], "little") >> 1)
    return out


# ----------------------------------------------------------------------------------------------- endpoint (HTTP)
def redact_url(url: str) -> str:
    """The URL without user:password@ or a query string, for names and messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: traffic that never leaves this machine. Names are not resolved."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_insecure_endpoint(url: str) -> bool:
    """Plain http to another machine: the API key and every prompt would cross the network in clear text."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname or "")


def api_key(env_name: Optional[str]) -> Optional[str]:
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"--api-key-env {env_name}: that environment variable is not set")
        return value
    return next((os.environ[n] for n in API_KEY_ENVS if os.environ.get(n)), None)


class EndpointTeacher:
    """An OpenAI-compatible chat-completions endpoint, asked by ``concurrency`` threads at a time.

    ``model`` is sent as the request's ``model`` field; without it the field is left out, which mlx_lm.server
    and llama.cpp's server read as "the model I was started with". ``timeout`` bounds one request from connect
    to the last byte; ``retries_done`` counts retried requests.
    """

    def __init__(self, base_url: str, model: Optional[str] = None, *, api_key_env: Optional[str] = None,
                 concurrency: int = 4, timeout: float = 120.0, retries: int = 4, backoff: float = 0.5,
                 max_backoff: float = 30.0, sleep: Optional[Callable[[float], None]] = None,
                 allow_insecure: bool = False, max_body: int = MAX_BODY):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"not an http(s) URL: {redact_url(base_url)}")
        if is_insecure_endpoint(base_url) and not allow_insecure:  # checked before any connection
            raise ConfigError(f"{redact_url(base_url)}: plain http to another machine would send the API key and "
                              "every prompt unencrypted; use https",
                              hint="or pass --allow-insecure-endpoint on a network you trust")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = redact_url(base_url) + (f" (model {model})" if model else "")
        self.concurrency = max(1, concurrency)
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, max(0, retries), backoff, max_backoff
        self.max_body = max_body
        self._sleep = sleep
        self._key = api_key(api_key_env)
        self._lock = threading.Lock()
        self.retries_done = 0
        self.requests = 0

    def complete(self, conversations: list[list[dict]], sampling: Sampling) -> list[Completion]:
        if not conversations:
            return []
        workers = min(self.concurrency, len(conversations))
        stop = Stop()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlxsft-endpoint")
        futures = [pool.submit(self.request, msgs, sampling, stop) for msgs in conversations]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                if f.done() and f.exception() is not None:
                    f.result()  # raises it: the first error in prompt order, the others not waited for
            return [f.result() for f in futures]
        except BaseException:  # Ctrl-C, or an error that stops the run: send nothing more
            stop.set()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # requests not yet started are never sent (nor billed)

    def close(self) -> None:
        pass

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def request(self, messages: list[dict], sampling: Sampling, stop: Optional["Stop"] = None) -> Completion:
        """One chat completion, retried on transient failures until ``stop`` is set."""
        stop = stop or Stop()
        body: dict[str, Any] = {"messages": messages, "temperature": sampling.temp, "top_p": sampling.top_p,
                                "max_tokens": sampling.max_tokens}
        if self.model:
            body["model"] = self.model
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        reason = ""
        for attempt in range(self.retries + 1):
            if stop.is_set():
                raise ModelError(f"{self.name}: stopped")  # nobody waits for this answer any more
            retry_after: Optional[float] = None
            with self._lock:
                self.requests += 1
            deadline = Deadline(self.timeout)
            stop.add(deadline)
            try:
                req = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
                with self._opener(deadline).open(req, timeout=self.timeout) as resp:
                    payload = self._read_body(resp)
                if deadline.expired:  # the socket was shut mid-answer: what came is cut short
                    raise TimeoutError("timed out")
                return self._parse(payload)
            except urllib.error.HTTPError as e:
                detail = _error_detail(e)
                if e.code in PROMPT_STATUS:
                    return Completion("", finish_reason="error", error=f"HTTP {e.code}: {detail}")
                if e.code not in RETRY_STATUS:
                    hint = ("set the API key in MLXSFT_API_KEY or OPENAI_API_KEY, or name the variable with "
                            "--api-key-env") if e.code in (401, 403) else None
                    raise ModelError(f"{self.name}: HTTP {e.code} ({detail})", hint=hint) from None
                reason, retry_after = f"HTTP {e.code}", _retry_after(e.headers)
            except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets, TLS errors
                reason = "timed out" if deadline.expired else _network_reason(e)
            finally:
                deadline.cancel()
                stop.discard(deadline)
            if attempt == self.retries or stop.is_set():
                break
            delay = retry_after if retry_after is not None else min(self.max_backoff, self.backoff * 2 ** attempt)
            delay = min(self.max_backoff, delay) * (1.0 + 0.25 * random.random())  # jitter: no thundering herd
            with self._lock:
                self.retries_done += 1
            if self._sleep is not None:
                self._sleep(delay)
            else:
                stop.wait(delay)  # a Ctrl-C ends the wait
        raise ModelError(f"{self.name}: no answer after {self.retries + 1} tries (last: {reason})",
                         hint="is the server up? re-run the same command to resume")

    def _opener(self, deadline: "Deadline") -> urllib.request.OpenerDirector:
        """urllib's opener (proxies from the environment as usual) that refuses redirects and whose sockets
        ``deadline`` shuts when it expires."""
        return urllib.request.build_opener(RefuseRedirects(self.name), DeadlineHTTPHandler(deadline),
                                           DeadlineHTTPSHandler(deadline))

    def _read_body(self, resp: Any) -> bytes:
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_body:
            raise self._too_large()
        chunks, size = [], 0
        while chunk := resp.read(1 << 16):
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> ModelError:
        return ModelError(f"{self.name}: the answer is larger than {_size(self.max_body)}, which no chat "
                          "completion is; refused")

    def _parse(self, payload: bytes) -> Completion:
        try:
            obj = json.loads(payload)
            choice = obj["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ModelError(f"{self.name}: not an OpenAI chat-completions response "
                             f"(starts {payload[:80]!r})") from None
        usage = obj.get("usage") or {}
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        return Completion(text=text.strip(), tokens=int(tokens) if isinstance(tokens, int) else 0,
                          finish_reason=str(choice.get("finish_reason") or "stop"))


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Stop at a 301/302/303/307/308 instead of following it: urllib would turn the POST into a GET and send the
    Authorization header to whatever host ``Location`` names, https to http included."""

    def __init__(self, name: str):
        self.name = name

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        fp.close()
        host = urllib.parse.urlsplit(newurl).hostname or "?"
        raise ModelError(f"{self.name}: HTTP {code} redirects to {host}; redirects are refused, so the API key "
                         "goes only to the URL given", hint="use the URL the endpoint redirects to")


class Deadline:
    """Shuts the sockets of one request when ``seconds`` have passed: the socket timeout bounds each read, this
    bounds them all together (a server sending a byte every few seconds would otherwise never time out)."""

    def __init__(self, seconds: float):
        self.expired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> socket.socket:
        # a duplicate descriptor: TLS detaches ``sock`` when it wraps it, and a shutdown through any descriptor of
        # the connection ends it for all of them
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            if self.expired:
                _shut(dup)
        return sock

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                _shut(sock)

    def cancel(self) -> None:
        """The request is over: stop the timer and close the duplicates."""
        self._timer.cancel()
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()


class Stop:
    """Set once for a batch of requests (Ctrl-C, or one error that ends the run): requests in flight are cut
    (their deadlines expire now) and none is retried or started."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._deadlines: set[Deadline] = set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)

    def add(self, deadline: Deadline) -> None:
        with self._lock:
            self._deadlines.add(deadline)
            if self._event.is_set():
                deadline.expire()

    def discard(self, deadline: Deadline) -> None:
        with self._lock:
            self._deadlines.discard(deadline)

    def set(self) -> None:
        with self._lock:
            self._event.set()
            for deadline in self._deadlines:
                deadline.expire()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read, which then sees the end of the stream
    except OSError:  # already closed
        pass


class _Watched:
    """Mixin for urllib's HTTP(S) handlers: every socket a connection creates is watched by ``deadline``."""

    deadline: Deadline

    def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:
        deadline = self.deadline

        def connection(*a: Any, **kwa: Any) -> http.client.HTTPConnection:
            conn = http_class(*a, **kwa)
            create = conn._create_connection  # socket.create_connection; a proxy tunnel and TLS run on top
            conn._create_connection = lambda *ca, **ckw: deadline.watch(create(*ca, **ckw))
            return conn

        return super().do_open(connection, req, **kw)  # type: ignore[misc]


class DeadlineHTTPHandler(_Watched, urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline):
        super().__init__()
        self.deadline = deadline


class DeadlineHTTPSHandler(_Watched, urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline):
        super().__init__()
        self.deadline = deadline


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


def _error_detail(e: urllib.error.HTTPError) -> str:
    try:
        body = e.read(300).decode("utf-8", "replace")
    except Exception:  # the body is only a courtesy for the message
        body = ""
    return " ".join((body or e.reason or "").split())[:200] or str(e.code)


def _retry_after(headers: Any) -> Optional[float]:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def _network_reason(e: Exception) -> str:
    inner = getattr(e, "reason", None)
    if isinstance(inner, Exception):
        e = inner
    if isinstance(e, TimeoutError) or "timed out" in str(e):
        return "timed out"
    return " ".join(str(e).split())[:120] or type(e).__name__
