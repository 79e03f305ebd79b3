"""Where responses come from: a local model (any model spec, MLX batched generation) or an OpenAI-compatible
endpoint (``/v1/chat/completions`` over HTTP: mlx_lm.server, llama.cpp, vLLM, OpenAI, ...).

    teacher = make_teacher("smollm2-135m-instruct")                       # local, batched
    teacher = make_teacher("http://127.0.0.1:8080/v1", model_name="default_model", concurrency=4)
    completions = teacher.complete([[{"role": "user", "content": "Hi"}]] * 4, Sampling(temp=0.7))

One ``Completion`` per conversation, in order; ask for K samples of a prompt by passing it K times.

The endpoint client uses only the standard library. Each request has a timeout; connection errors, timeouts
and HTTP 408/409/425/429/5xx are retried with exponential backoff (``Retry-After`` honoured); a 400/413/422
fails only that prompt (``Completion.error``: not written, tried again on a re-run); 401/403/404 stop the run
at once. The API key comes from an environment variable only (``--api-key-env``, else ``MLXSFT_API_KEY`` or
``OPENAI_API_KEY``) and is never part of a name, a message or an output row.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Protocol

from mlxsft.errors import ConfigError, ModelError

API_KEY_ENVS = ("MLXSFT_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
PROMPT_STATUS = frozenset({400, 413, 422})  # this request is bad (too long, refused); the next may be fine


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
                 load_progress: Optional[Callable[[str, float], None]] = None) -> Teacher:
    """An ``EndpointTeacher`` for an ``http(s)://`` URL, else a ``LocalTeacher`` for a model spec."""
    if is_endpoint(spec):
        return EndpointTeacher(spec, model_name, api_key_env=api_key_env, concurrency=concurrency,
                               timeout=timeout, retries=retries)
    if model_name:
        raise ConfigError("--teacher-model / --judge-model name a model served by an endpoint; "
                          f"'{spec}' is a local model spec")
    return LocalTeacher(spec, batch_size=batch_size, progress=load_progress)


# ----------------------------------------------------------------------------------------------- local (MLX)
class LocalTeacher:
    """A model loaded with ``mlxsft.models.load_mlx``; answers a list of conversations in one batched run
    (mlx-lm's ``BatchGenerator``), sampled with ``temp``/``top_p`` from a seeded random stream."""

    def __init__(self, spec: str, *, batch_size: int = 16, chat_template: Optional[str] = None,
                 progress: Optional[Callable[[str, float], None]] = None):
        from mlxsft.backends.mlx.generate import stop_condition
        from mlxsft.data.templates import resolve_chat_template
        from mlxsft.models import load_mlx

        self.name = spec
        self.batch_size = max(1, batch_size)
        self.model, self.tokenizer, self.folder = load_mlx(spec, progress=progress)
        self.model.eval()
        self.hf = getattr(self.tokenizer, "_tokenizer", self.tokenizer)
        self.template = resolve_chat_template(self.hf, chat_template)
        self.stop = stop_condition(self.tokenizer, self.template)
        self._seed: Optional[int] = None

    def complete(self, conversations: list[list[dict]], sampling: Sampling) -> list[Completion]:
        import mlx.core as mx
        from mlx_lm.sample_utils import make_sampler

        from mlxsft.backends.mlx.generate import generate_answers_batch

        if not conversations:
            return []
        if self._seed != sampling.seed:  # seed once: later batches continue the same random stream
            mx.random.seed(sampling.seed)
            self._seed = sampling.seed
        answers = generate_answers_batch(self.model, self.tokenizer, conversations, self.template,
                                         max_tokens=sampling.max_tokens, batch_size=self.batch_size,
                                         sampler=make_sampler(temp=sampling.temp, top_p=sampling.top_p))
        return [Completion(text=a.text, tokens=a.tokens, finish_reason=a.finish_reason) for a in answers]

    def close(self) -> None:
        self.model = None


# ----------------------------------------------------------------------------------------------- endpoint (HTTP)
def redact_url(url: str) -> str:
    """The URL without user:password@ or a query string, for names and messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


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
    and llama.cpp's server read as "the model I was started with". ``retries_done`` counts retried requests.
    """

    def __init__(self, base_url: str, model: Optional[str] = None, *, api_key_env: Optional[str] = None,
                 concurrency: int = 4, timeout: float = 120.0, retries: int = 4, backoff: float = 0.5,
                 max_backoff: float = 30.0, sleep: Callable[[float], None] = time.sleep):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"not an http(s) URL: {redact_url(base_url)}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = redact_url(base_url) + (f" (model {model})" if model else "")
        self.concurrency = max(1, concurrency)
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, max(0, retries), backoff, max_backoff
        self._sleep = sleep
        self._key = api_key(api_key_env)
        self._lock = threading.Lock()
        self.retries_done = 0
        self.requests = 0

    def complete(self, conversations: list[list[dict]], sampling: Sampling) -> list[Completion]:
        if not conversations:
            return []
        workers = min(self.concurrency, len(conversations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlxsft-endpoint") as pool:
            return list(pool.map(lambda msgs: self.request(msgs, sampling), conversations))

    def close(self) -> None:
        pass

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def request(self, messages: list[dict], sampling: Sampling) -> Completion:
        """One chat completion, retried on transient failures."""
        body: dict[str, Any] = {"messages": messages, "temperature": sampling.temp, "top_p": sampling.top_p,
                                "max_tokens": sampling.max_tokens}
        if self.model:
            body["model"] = self.model
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        reason = ""
        for attempt in range(self.retries + 1):
            wait: Optional[float] = None
            with self._lock:
                self.requests += 1
            try:
                req = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = resp.read()
                return self._parse(payload)
            except urllib.error.HTTPError as e:
                detail = _error_detail(e)
                if e.code in PROMPT_STATUS:
                    return Completion("", finish_reason="error", error=f"HTTP {e.code}: {detail}")
                if e.code not in RETRY_STATUS:
                    hint = ("set the API key in MLXSFT_API_KEY or OPENAI_API_KEY, or name the variable with "
                            "--api-key-env") if e.code in (401, 403) else None
                    raise ModelError(f"{self.name}: HTTP {e.code} ({detail})", hint=hint) from None
                reason, wait = f"HTTP {e.code}", _retry_after(e.headers)
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
                reason = _network_reason(e)
            if attempt == self.retries:
                break
            delay = wait if wait is not None else min(self.max_backoff, self.backoff * 2 ** attempt)
            delay = min(self.max_backoff, delay) * (1.0 + 0.25 * random.random())  # jitter: no thundering herd
            with self._lock:
                self.retries_done += 1
            self._sleep(delay)
        raise ModelError(f"{self.name}: no answer after {self.retries + 1} tries (last: {reason})",
                         hint="is the server up? re-run the same command to resume")

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
