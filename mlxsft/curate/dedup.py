"""Deduplication for ``mlxsft data filter``: exact (a hash of normalised text) and near (MinHash LSH).

    index = DedupIndex(Path(tmp), exact=True, near=0.8)
    for text in texts:
        index.add(text)                 # streams: a few hundred bytes per row go to files in `tmp`
    dups = index.resolve()
    dups.kind[i]                        # KEEP, EXACT or NEAR
    dups.of[i]                          # for a duplicate: the earlier row it repeats

Normalisation: Unicode NFKC, lowercase, punctuation dropped, whitespace collapsed. Exact duplicates share the
64-bit BLAKE2 hash of the normalised text. Near duplicates have word 3-gram sets (the whole text under 3 words)
whose Jaccard similarity, estimated by MinHash with ``num_perm`` permutations (``minhash.py``: rensa if installed,
else datasketch), is at least ``near``. In every group the first row is kept.

How near duplicates are found: the signature is cut into ``b`` bands of ``r`` values (LSH). Two rows that agree on
a whole band are candidates; each candidate is compared with the earliest row of its bucket, first by the signatures'
estimate (a cheap screen at ``near - SCREEN``, 4 standard deviations of a 128-permutation estimate below the
threshold), then exactly: the Jaccard similarity of the two rows' shingle sets, kept as sorted 32-bit CRC keys of
their shingles. ``b`` and ``r`` are chosen to miss very few pairs (a false-negative weight of 0.99: a pair at 0.8
is a candidate 98.6% of the time, at 0.85 99.9%), since confirming costs little, and the exact check means no pair
below the threshold is reported (the estimate alone, ~0.035 off at 0.8, reported pairs on both sides of it:
precision 0.92 and recall 0.91 on 10k rows of bench_filter's pool). Rather than datasketch's in-memory LSH index
(~5.7 KB of Python objects per row, measured), the band hashes (8 bytes each), a 16-bit copy of each signature and
the shingle keys go to files, and ``resolve`` sorts one band column at a time, confirms each candidate pair once
(numpy, in chunks) and joins the confirmed pairs into groups by label propagation: memory peaks at ~125 bytes per
row plus the distinct candidate pairs (16 bytes each; about one per near duplicate), disk at
``8 b + 2 num_perm + 4 shingles`` bytes per row.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from mlxsft.curate.minhash import make_minhasher
from mlxsft.errors import ConfigError

KEEP, EXACT, NEAR = 0, 1, 2
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalize_text(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_PUNCT.sub(" ", t).split())


def exact_hash(normalized: str) -> int:
    """The 64-bit BLAKE2 hash exact dedup compares, of already normalised text."""
    return int.from_bytes(hashlib.blake2b(normalized.encode("utf-8"), digest_size=8).digest(), "little")


def shingles(text: str, n: int = 3, normalized: bool = False) -> set[str]:
    """Word ``n``-grams of the normalised text (``normalized``: ``text`` already is)."""
    words = (text if normalized else normalize_text(text)).split()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(gram) for gram in zip(*(words[i:] for i in range(n)))}


def shingle_keys(shingle_set: set[str]) -> np.ndarray:
    """The exact check's form of a shingle set: sorted unique 32-bit CRCs (two different shingles of one pair of
    rows share a CRC about once in 4 billion comparisons: a negligible error on a Jaccard similarity)."""
    return np.unique(np.fromiter((zlib.crc32(s.encode("utf-8")) for s in shingle_set), np.uint32,
                                 count=len(shingle_set)))


def pair_jaccard(keys: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The exact Jaccard similarity of rows ``a[i]`` and ``b[i]``, whose ``shingle_keys`` are
    ``keys[offsets[row]:offsets[row + 1]]``: all pairs at once, by sorting (pair, key) and counting repeats."""
    if not len(a):
        return np.zeros(0)
    la, lb = offsets[a + 1] - offsets[a], offsets[b + 1] - offsets[b]
    pair = np.arange(len(a), dtype=np.uint64)

    def tagged(rows: np.ndarray, lens: np.ndarray) -> np.ndarray:
        ends = np.cumsum(lens)
        idx = np.arange(ends[-1]) - np.repeat(ends - lens, lens) + np.repeat(offsets[rows], lens)
        return (np.repeat(pair, lens) << np.uint64(32)) | np.asarray(keys[idx]).astype(np.uint64)

    both = np.concatenate([tagged(a, la), tagged(b, lb)])
    both.sort()
    repeat = both[1:][both[1:] == both[:-1]]  # a row's keys are unique: a repeat is a key the two rows share
    inter = np.bincount((repeat >> np.uint64(32)).astype(np.int64), minlength=len(a))
    return inter / (la + lb - inter)


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.01, fn_weight: float = 0.99
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


BATCH = 256  # rows whose shingles are hashed together, then written in one go
CONFIRM_CHUNK = 1 << 14  # candidate pairs compared at once (2 x 4 MB of signatures at 128 permutations)
SCREEN = 0.15  # the estimate's screen sits this far below the threshold: 4 standard deviations at 0.8


def band_hashes(values: np.ndarray, b: int, r: int) -> np.ndarray:
    """(rows, b) uint64: each band's ``r`` values folded by random odd multipliers (mod 2**64). Two different bands
    collide by chance at most once in 2**32: such a false candidate only costs a signature comparison."""
    mult = np.random.default_rng(12345).integers(1, 1 << 63, size=r, dtype=np.uint64) | np.uint64(1)
    bands = values[:, : b * r].astype(np.uint64).reshape(len(values), b, r)
    with np.errstate(over="ignore"):
        h = (bands * mult).sum(axis=2, dtype=np.uint64)
        return h ^ (h >> np.uint64(29))


class DedupIndex:
    """Rows are added one at a time and resolved at the end; state lives in ``folder`` (a temporary folder)."""

    def __init__(self, folder: Path, *, exact: bool = True, near: float = 0.8, num_perm: int = 128, ngram: int = 3,
                 seed: int = 1, minhash: str = "auto"):
        if not 0 <= near <= 1:
            raise ConfigError(f"--near-dup must be between 0 (off) and 1, got {near}")
        self.exact, self.near, self.num_perm, self.ngram = exact, near, num_perm, ngram
        self.n = 0
        self.minhash: Optional[str] = None  # the backend that made the signatures
        self._hashes = array("Q")  # exact: 8 bytes a row
        if near > 0:
            self._hasher = make_minhasher(num_perm, seed, minhash)
            self.minhash = self._hasher.name
            self.b, self.r = optimal_bands(near, num_perm)
            self._pending: list[set[str]] = []
            self._bands_path, self._sigs_path = Path(folder) / "bands.u64", Path(folder) / "sigs.u16"
            self._keys_path = Path(folder) / "keys.u32"
            self._bands = open(self._bands_path, "wb")
            self._sigs = open(self._sigs_path, "wb")
            self._keys = open(self._keys_path, "wb")
            self._offsets = array("Q", [0])  # row i's shingle keys: keys[offsets[i]:offsets[i + 1]]

    def add(self, text: str) -> None:
        norm = normalize_text(text)
        if self.exact:
            self._hashes.append(exact_hash(norm))
        if self.near > 0:
            self._pending.append(shingles(norm, self.ngram, normalized=True))
            if len(self._pending) == BATCH:
                self._flush()
        self.n += 1

    def add_keys(self, hashes: list[int], sigs: Optional[np.ndarray], keys: Optional[np.ndarray] = None,
                 key_counts: Optional[np.ndarray] = None) -> None:
        """Rows whose keys were computed elsewhere (``scan.Scanner``, in worker processes): their ``exact_hash``
        values, their MinHash signatures from the same backend, ``(rows, num_perm)`` uint32, and their
        ``shingle_keys`` end to end with each row's count."""
        if self.near > 0:
            assert sigs is not None and sigs.shape == (len(hashes), self.num_perm)
            assert keys is not None and key_counts is not None and len(key_counts) == len(hashes)
            self._flush()
            self._write_signatures(sigs, keys, key_counts)
        if self.exact:
            self._hashes.extend(hashes)
        self.n += len(hashes)

    def _flush(self) -> None:
        if not self._pending:
            return
        values = self._hasher.signatures(self._pending)
        keys = [shingle_keys(s) for s in self._pending]
        self._pending = []
        self._write_signatures(values, np.concatenate(keys), np.array([len(k) for k in keys], np.int64))

    def _write_signatures(self, values: np.ndarray, keys: np.ndarray, key_counts: np.ndarray) -> None:
        self._bands.write(band_hashes(values, self.b, self.r).tobytes())
        # 16 low bits: two different hash values agree by chance once in 65536, a negligible bias (and the
        # estimate only screens: the exact check decides)
        self._sigs.write((values & 0xFFFF).astype(np.uint16).tobytes())
        self._keys.write(keys.astype(np.uint32).tobytes())
        self._offsets.extend((self._offsets[-1] + np.cumsum(key_counts)).tolist())

    def resolve(self, progress: Optional[Callable[[int, int], None]] = None) -> Duplicates:
        kind = np.zeros(self.n, np.int8)
        of = np.full(self.n, -1, np.int64)
        if self.exact and self.n:
            self._resolve_exact(kind, of)
        if self.near > 0:
            self._flush()
            self._bands.close()
            self._sigs.close()
            self._keys.close()
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
        offsets = np.frombuffer(self._offsets, dtype=np.uint64).astype(np.int64)
        shingle = np.memmap(self._keys_path, dtype=np.uint32, mode="r") if offsets[-1] else np.zeros(0, np.uint32)
        rows = np.flatnonzero(kind == KEEP)  # exact duplicates take no part
        checked = np.zeros(0, np.int64)  # pair keys (member * n + head) already compared, sorted
        edges_m, edges_h = [], []  # confirmed pairs: a member and the earlier head of its bucket
        for band in range(self.b):
            col = np.asarray(bands[rows, band])
            order = np.argsort(col, kind="stable")
            values, members = col[order], rows[order]  # within a bucket ascending rows: the first is the earliest
            new = np.r_[True, values[1:] != values[:-1]]
            head = members[np.flatnonzero(new)][np.cumsum(new) - 1]
            pair = head != members
            m, h = members[pair], head[pair]
            keys = m * self.n + h
            fresh = ~np.isin(keys, checked, assume_unique=False)  # a pair found in an earlier band is not redone
            m, h, keys = m[fresh], h[fresh], keys[fresh]
            checked = np.union1d(checked, keys)
            ok = np.concatenate([self._confirm(sigs, shingle, offsets, m[s:s + CONFIRM_CHUNK], h[s:s + CONFIRM_CHUNK])
                                 for s in range(0, len(m), CONFIRM_CHUNK)] or [np.zeros(0, bool)])
            edges_m.append(m[ok])
            edges_h.append(h[ok])
            first_of = of[m[ok]] < 0  # a row names the first earlier row it was confirmed against
            of[m[ok][first_of]] = h[ok][first_of]
            if progress:
                progress(band + 1, self.b)
        roots = _components(self.n, np.concatenate(edges_m), np.concatenate(edges_h))
        near = (roots != np.arange(self.n)) & (kind == KEEP)
        kind[near] = NEAR
        missing = near & (of < 0)  # joined through another member: name the group's first row
        of[missing] = roots[missing]
        del bands, sigs, shingle

    def _confirm(self, sigs: np.ndarray, keys: np.ndarray, offsets: np.ndarray, m: np.ndarray, h: np.ndarray
                 ) -> np.ndarray:
        return confirm_pairs(np.asarray(sigs[m]), np.asarray(sigs[h]), keys, offsets, m, h, self.near)


def confirm_pairs(sig_a: np.ndarray, sig_b: np.ndarray, keys: np.ndarray, offsets: np.ndarray, a: np.ndarray,
                  b: np.ndarray, near: float) -> np.ndarray:
    """Which candidate pairs ``(a[i], b[i])`` are near duplicates: the signatures' agreement screens (at
    ``near - SCREEN``), the exact Jaccard of the shingle keys decides (``>= near``)."""
    ok = (sig_a == sig_b).mean(axis=1) >= near - SCREEN
    idx = np.flatnonzero(ok)
    ok[idx] = pair_jaccard(keys, offsets, a[idx], b[idx]) >= near
    return ok


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row's group root (its earliest row) for the undirected edges ``a[i] - b[i]``: hook each edge's larger
    root under its smaller, then jump pointers, until no edge joins two roots."""
    parent = np.arange(n, dtype=np.int64)
    while len(a):
        ra, rb = parent[a], parent[b]
        lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
        differ = lo != hi
        if not differ.any():
            break
        np.minimum.at(parent, hi[differ], lo[differ])
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
        a, b = a[differ], b[differ]
    return parent
