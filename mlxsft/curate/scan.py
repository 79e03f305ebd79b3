"""The per-row work of ``mlxsft data filter``'s first pass, in chunks that worker processes can share.

    scanner = Scanner(ScanConfig(quality=QualityOptions(), name="big.jsonl"))
    chunk = scanner.scan([(1, b'{"prompt": "Hi", "completion": "Hello there"}\\n')])
    chunk.reasons        # [None]: the row passed (else "invalid", "too_short", ... and chunk.problems[i])
    chunk.hashes, chunk.sigs, chunk.prompts    # for the rows that passed: dedup keys and the --select text

For each line: parse it as any SFT format ``mlxsft train`` reads, run the quality checks on the response, and for
a row that passes, hash its normalised text (exact dedup) and MinHash its 3-gram shingles (near dedup). Nothing
depends on other rows, so ``scan_chunks`` spreads chunks over processes (``workers``) and hands the results back
in input order: the output is the same for any number of workers. Parsing and the checks are Python, so one
process does ~2k rows/s; on a 1M-row pool the workers are what turns two cores into twice that.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from mlxsft.curate.dedup import exact_hash, normalize_text, shingle_keys, shingles
from mlxsft.curate.jsonl import parse_line
from mlxsft.curate.quality import QualityChecks, QualityOptions, approx_tokens
from mlxsft.errors import DataError

CHUNK_ROWS = 1000  # lines a worker takes at a time: ~0.5 s of work, ~0.5 MB to send


@dataclass
class RowTexts:
    prompt: str
    response: str

    @property
    def row(self) -> str:
        return f"{self.prompt}\n{self.response}"


def row_texts(row: dict, file: str, line: int) -> tuple[Optional[RowTexts], Optional[str]]:
    """Prompt and response text of a valid SFT row in any format training reads, else (None, the problem)."""
    from mlxsft.data.formats import to_conversation
    from mlxsft.data.records import RawRow

    conv, problems = to_conversation(RawRow(row, file, line))
    if conv is None:
        return None, str(problems[0]) if problems else "not a valid row"
    if conv.text is not None:
        return RowTexts("", conv.text), None
    prompt = "\n".join(m["content"] for m in conv.messages if m["role"] != "assistant")
    response = "\n".join(m["content"] for m in conv.messages if m["role"] == "assistant")
    return RowTexts(prompt, response), None


def token_counter(spec: Optional[str]) -> tuple[Callable[[str], int], str]:
    if spec is None:
        return approx_tokens, "approx"
    from mlxsft.models import load_tokenizer

    tok = load_tokenizer(spec)
    return (lambda text: len(tok.encode(text, add_special_tokens=False))), spec


@dataclass
class ScanConfig:
    quality: QualityOptions = field(default_factory=QualityOptions)
    tokenizer: Optional[str] = None  # count tokens with this model's tokenizer (default: approx_tokens)
    name: str = ""  # the input file, for problems' file:line
    dedup_on: str = "row"
    exact: bool = True
    near: float = 0.8  # 0: no signatures
    num_perm: int = 128
    minhash: str = "auto"
    ngram: int = 3
    prompts: bool = False  # also return each passing row's prompt (its response for plain text)


@dataclass
class ScannedChunk:
    linenos: list[int]
    reasons: list[Optional[str]]  # per line: None (passed) or the step that removes it
    problems: list[Optional[str]]  # per line: why an invalid row is invalid
    hashes: list[int]  # per passing row: the exact-dedup hash
    sigs: Optional[np.ndarray]  # (passing rows, num_perm) uint32 MinHash signatures, or None without near dedup
    prompts: list[str]  # per passing row, when ScanConfig.prompts
    # with near dedup: the passing rows' shingle_keys end to end, and how many each row has (two arrays pickle
    # to a worker's parent far faster than one small array per row)
    keys: Optional[np.ndarray] = None
    key_counts: Optional[np.ndarray] = None


class Scanner:
    def __init__(self, cfg: ScanConfig):
        from mlxsft.curate.minhash import make_minhasher

        self.cfg = cfg
        count, _ = token_counter(cfg.tokenizer)
        self.checks = QualityChecks(cfg.quality, count)
        self.hasher = make_minhasher(cfg.num_perm, 1, cfg.minhash) if cfg.near > 0 else None

    def scan(self, lines: list[tuple[int, bytes]]) -> ScannedChunk:
        cfg = self.cfg
        out = ScannedChunk([], [], [], [], None, [])
        shingle_sets = []
        for lineno, raw in lines:
            try:
                texts, problem = row_texts(parse_line(raw, cfg.name, lineno), cfg.name, lineno)
            except DataError as e:
                texts, problem = None, str(e)
            reason = "invalid" if texts is None else self.checks.reason(texts.response)
            out.linenos.append(lineno)
            out.reasons.append(reason)
            out.problems.append(problem)
            if reason is not None:
                continue
            assert texts is not None
            norm = normalize_text(getattr(texts, cfg.dedup_on))
            out.hashes.append(exact_hash(norm))
            if self.hasher is not None:
                shingle_sets.append(shingles(norm, cfg.ngram, normalized=True))
            if cfg.prompts:
                out.prompts.append(texts.prompt or texts.response)
        if self.hasher is not None:
            out.sigs = self.hasher.signatures(shingle_sets)
            keys = [shingle_keys(x) for x in shingle_sets]
            out.key_counts = np.array([len(k) for k in keys], np.int64)
            out.keys = np.concatenate(keys) if keys else np.zeros(0, np.uint32)
        return out


_worker: Optional[Scanner] = None  # one per worker process, built by its initializer


def _init_worker(cfg: ScanConfig) -> None:
    import signal

    global _worker
    # Ctrl-C reaches the whole process group: the main process stops the run (and says so); a worker that also
    # raised would only print a traceback per process
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = Scanner(cfg)


def _scan_in_worker(lines: list[tuple[int, bytes]]) -> ScannedChunk:
    assert _worker is not None
    return _worker.scan(lines)


def chunked(lines: Iterable[tuple[int, bytes]], size: Optional[int] = None) -> Iterator[list[tuple[int, bytes]]]:
    size = size or CHUNK_ROWS
    chunk: list[tuple[int, bytes]] = []
    for item in lines:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def scan_chunks(cfg: ScanConfig, chunks: Iterable[list[tuple[int, bytes]]], workers: int = 1
                ) -> Iterator[tuple[list[tuple[int, bytes]], ScannedChunk]]:
    """Each chunk with its scan, in input order; ``workers`` > 1 scans in that many processes, with at most two
    chunks each waiting, so memory stays flat however big the input."""
    if workers <= 1:
        scanner = Scanner(cfg)
        for chunk in chunks:
            yield chunk, scanner.scan(chunk)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(cfg,)) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append((chunk, pool.submit(_scan_in_worker, chunk)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
