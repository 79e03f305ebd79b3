"""MinHash signatures for near dedup (``dedup.py``), from rensa (Rust) when it is installed, else datasketch.

    hasher = make_minhasher(num_perm=128, seed=1)        # hasher.name: "rensa" or "datasketch"
    sigs = hasher.signatures([{"a b c", "b c d"}, {"x y z"}])       # (2, 128) uint32, one row per shingle set

Both estimate the Jaccard similarity of two sets as the share of positions where their signatures agree; they hash
differently, so their signatures are not interchangeable (the filter's fingerprint records which one ran).
rensa (``pip install 'mlxsft[curate]'``) does the hashing in Rust: ~30 us a row of ~100 shingles against ~1.7 ms
for datasketch's per-shingle SHA-1 in Python (measured on the 2-core build machine), and on a 10k-row pool its
pairs above the threshold match an exact Jaccard computation as closely (``bench/bench_filter.py --check-dedup``).
"""

from __future__ import annotations

import importlib.util
from typing import Iterable, Protocol

import numpy as np

from mlxsft.errors import ConfigError

BACKENDS = ("auto", "rensa", "datasketch")


class MinHasher(Protocol):
    name: str

    def signatures(self, shingle_sets: Iterable[set[str]]) -> np.ndarray: ...


def rensa_available() -> bool:
    return importlib.util.find_spec("rensa") is not None


def resolve_backend(backend: str = "auto") -> str:
    """The backend ``make_minhasher(backend=...)`` uses: ``auto`` is rensa if installed, else datasketch."""
    if backend not in BACKENDS:
        raise ConfigError(f"--minhash {backend}: expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "rensa" if rensa_available() else "datasketch"
    if backend == "rensa" and not rensa_available():
        raise ConfigError("--minhash rensa needs the rensa package", hint="pip install 'mlxsft[curate]'")
    return backend


def make_minhasher(num_perm: int = 128, seed: int = 1, backend: str = "auto") -> MinHasher:
    if resolve_backend(backend) == "rensa":
        return RensaMinHasher(num_perm, seed)
    return DatasketchMinHasher(num_perm, seed)


class RensaMinHasher:
    name = "rensa"

    def __init__(self, num_perm: int, seed: int):
        from rensa import RMinHash

        self._new = lambda: RMinHash(num_perm=num_perm, seed=seed)
        self.num_perm = num_perm

    def signatures(self, shingle_sets: Iterable[set[str]]) -> np.ndarray:
        sets = list(shingle_sets)
        out = np.empty((len(sets), self.num_perm), np.uint32)
        for i, s in enumerate(sets):
            m = self._new()
            m.update(list(s))
            out[i] = m.digest()  # into numpy at once: a list of 128 Python ints is ~4.6 KB
        return out


class DatasketchMinHasher:
    name = "datasketch"

    def __init__(self, num_perm: int, seed: int):
        try:
            from datasketch import MinHash
        except ImportError:
            raise ConfigError("near dedup needs datasketch (pip install datasketch), or pass --near-dup 0") from None
        # copying an empty MinHash shares its permutations: drawing them anew per row took half the time
        self._empty = MinHash(num_perm=num_perm, seed=seed)
        self.num_perm = num_perm

    def signatures(self, shingle_sets: Iterable[set[str]]) -> np.ndarray:
        sets = list(shingle_sets)
        out = np.empty((len(sets), self.num_perm), np.uint32)
        for i, s in enumerate(sets):
            m = self._empty.copy()
            m.update_batch([x.encode("utf-8") for x in s])
            out[i] = m.hashvalues  # below 2**32: datasketch keeps 32-bit hash values
        return out
