"""Deduplication for ``mlxsft data filter``: exact (a hash of normalised text) and near (MinHash LSH).

    index = DedupIndex(Path(tmp), exact=True, near=0.8)
    for text in texts:
        index.add(text)                 # streams: a few hundred bytes per row go to files in `tmp`
    dups = index.resolve()
    dups.kind[i]                        # KEEP, EXACT or NEAR
    dups.of[i]                          # for a duplicate: the earlier row it repeats

Normalisation: Unicode NFKC, lowercase, punctuation dropped, whitespace collapsed. Exact duplicates share the
64-bit BLAKE2 hash of the normalised text. Near duplicates have word 3-gram sets (the whole text under 3 words)
whose Jaccard similarity, estimated by datasketch's MinHash with ``num_perm`` permutations, is at least ``near``.
In every group the first row is kept.

How near duplicates are found: the signature is cut into ``b`` bands of ``r`` values (LSH). Two rows that agree on
a whole band are candidates; each candidate is confirmed against the earliest row of its bucket with the signatures'
estimate. ``b`` and ``r`` are chosen to miss few pairs (a false-negative weight of 0.95: at threshold 0.8, a pair at
0.85 is a candidate 99% of the time), since confirming costs little. Rather than datasketch's in-memory LSH index
(~5.7 KB of Python objects per row, measured), the band hashes (8 bytes each) and a 16-bit copy of each signature go
to files, and ``resolve`` sorts one band column at a time: memory peaks at ~115 bytes per row (measured; about
115 MB for a million rows), disk at ``8 b + 2 num_perm`` bytes per row.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from mlxsft.errors import ConfigError

KEEP, EXACT, NEAR = 0, 1, 2
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalize_text(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_PUNCT.sub(" ", t).split())


def shingles(text: str, n: int = 3) -> set[bytes]:
    words = normalize_text(text).split()
    if len(words) < n:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[i:i + n]).encode("utf-8") for i in range(len(words) - n + 1)}


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.05, fn_weight: float = 0.95
                  ) -> tuple[int, int]:
    """(b, r) with b * r <= num_perm minimising the weighted areas of false positives below the threshold and
    false negatives above it, for the candidate probability 1 - (1 - s^r)^b (as datasketch's MinHashLSH does)."""
    lo, hi = np.linspace(0.0, threshold, 256), np.linspace(threshold, 1.0, 256)

    def area(x: np.ndarray, y: np.ndarray) -> float:
        return float(((y[1:] + y[:-1]) * 0.5 * np.diff(x)).sum())

    best, best_err = (1, num_perm), np.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = area(lo, 1 - (1 - lo ** r) ** b)
            fn = area(hi, (1 - hi ** r) ** b)
            err = fp_weight * fp + fn_weight * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


@dataclass
class Duplicates:
    kind: np.ndarray  # int8 per row: KEEP, EXACT or NEAR
    of: np.ndarray  # int64 per row: the earlier row a duplicate repeats, -1 for kept rows

    def counts(self) -> dict[str, int]:
        return {"exact_dup": int((self.kind == EXACT).sum()), "near_dup": int((self.kind == NEAR).sum())}


class DedupIndex:
    """Rows are added one at a time and resolved at the end; state lives in ``folder`` (a temporary folder)."""

    def __init__(self, folder: Path, *, exact: bool = True, near: float = 0.8, num_perm: int = 128, ngram: int = 3,
                 seed: int = 1):
        if not 0 <= near <= 1:
            raise ConfigError(f"--near-dup must be between 0 (off) and 1, got {near}")
        self.exact, self.near, self.num_perm, self.ngram = exact, near, num_perm, ngram
        self.n = 0
        self._hashes = array("Q")  # exact: 8 bytes a row
        if near > 0:
            try:
                from datasketch import MinHash
            except ImportError:
                raise ConfigError("near dedup needs datasketch (pip install datasketch), or pass --near-dup 0") \
                    from None
            self.b, self.r = optimal_bands(near, num_perm)
            # copying an empty MinHash shares its permutations: drawing them anew per row took half the time
            self._empty = MinHash(num_perm=num_perm, seed=seed)
            self._bands_path, self._sigs_path = Path(folder) / "bands.u64", Path(folder) / "sigs.u16"
            self._bands = open(self._bands_path, "wb")
            self._sigs = open(self._sigs_path, "wb")

    def add(self, text: str) -> None:
        if self.exact:
            digest = hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=8).digest()
            self._hashes.append(int.from_bytes(digest, "little"))
        if self.near > 0:
            m = self._empty.copy()
            m.update_batch(list(shingles(text, self.ngram)))
            values = np.asarray(m.hashvalues, np.uint64)
            bands = b"".join(hashlib.blake2b(values[i * self.r:(i + 1) * self.r].tobytes(), digest_size=8).digest()
                             for i in range(self.b))
            self._bands.write(bands)
            # 16 low bits: two different hash values agree by chance once in 65536, a negligible bias
            self._sigs.write((values & 0xFFFF).astype(np.uint16).tobytes())
        self.n += 1

    def resolve(self, progress: Optional[Callable[[int, int], None]] = None) -> Duplicates:
        kind = np.zeros(self.n, np.int8)
        of = np.full(self.n, -1, np.int64)
        if self.exact and self.n:
            self._resolve_exact(kind, of)
        if self.near > 0:
            self._bands.close()
            self._sigs.close()
            if self.n:
                self._resolve_near(kind, of, progress)
        return Duplicates(kind, of)

    def _resolve_exact(self, kind: np.ndarray, of: np.ndarray) -> None:
        hashes = np.frombuffer(self._hashes, dtype=np.uint64)
        order = np.argsort(hashes, kind="stable")  # within equal hashes, input order
        sorted_h = hashes[order]
        new_run = np.r_[True, sorted_h[1:] != sorted_h[:-1]]
        first = order[np.flatnonzero(new_run)][np.cumsum(new_run) - 1]  # first row of each row's run
        dup = first != order
        kind[order[dup]] = EXACT
        of[order[dup]] = first[dup]

    def _resolve_near(self, kind: np.ndarray, of: np.ndarray, progress: Optional[Callable[[int, int], None]]) -> None:
        bands = np.memmap(self._bands_path, dtype=np.uint64, mode="r", shape=(self.n, self.b))
        sigs = np.memmap(self._sigs_path, dtype=np.uint16, mode="r", shape=(self.n, self.num_perm))
        rows = np.flatnonzero(kind == KEEP)  # exact duplicates take no part
        parent = np.arange(self.n, dtype=np.int64)  # union-find; the root of a group is its earliest row

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = int(parent[i])
            return i

        for band in range(self.b):
            col = np.asarray(bands[rows, band])
            order = np.argsort(col, kind="stable")
            values, members_all = col[order], rows[order]
            cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
            starts, ends = np.r_[0, cuts], np.r_[cuts, len(values)]
            for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
                members = members_all[s:e]  # ascending rows: the first is the bucket's earliest
                head = int(members[0])
                for m in members[1:]:
                    m = int(m)
                    if root(m) == root(head):
                        continue
                    if float(np.mean(sigs[m] == sigs[head])) >= self.near:
                        a, b = root(m), root(head)
                        parent[max(a, b)] = min(a, b)
                        if of[m] < 0:
                            of[m] = head
            if progress:
                progress(band + 1, self.b)
        roots = parent.copy()
        while True:  # pointer jumping: every row's final root
            nxt = roots[roots]
            if np.array_equal(nxt, roots):
                break
            roots = nxt
        near = (roots != np.arange(self.n)) & (kind == KEEP)
        kind[near] = NEAR
        missing = near & (of < 0)  # joined through another member: name the group's first row
        of[missing] = roots[missing]
        del bands, sigs
